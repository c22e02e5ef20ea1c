from modules import shared


class FaceRestoration:
    def name(self):
        return "None"

    def restore(self, np_image):
        return np_image


def restore_faces(np_image):
    """The host's hook: the restorer named in Settings (any, when none is named), else the
    image as it was."""
    wanted = shared.opts.face_restoration_model
    for restorer in shared.face_restorers:
        if wanted is None or restorer.name() == wanted:
            return restorer.restore(np_image)
    return np_image
