def preload(parser):
    parser.add_argument("--gpen-models-path", type=str, default=None,
                        help="Folder with GPEN checkpoints (default: models/GPEN).")
