"""Speed on a shared CPU: quiet, and beside 1 and 3 busy processes, against ONNX Runtime.

    python benchmarks/benchmark.py --contention          # the table in the README
    pip install -r benchmarks/requirements.txt           # ONNX Runtime and its exporter first

What users run, each measurement in a fresh process started while the busy processes (plain
Python loops, one core each) run: the network alone at 512 and 2048 (one face, fp32, through
the runner the pipeline calls, threads as it picks them), the parser (one face, fp32), and the
default pipeline on the 29-face photo (precision auto). Beside them, the same network exported
to ONNX (opset 18, as FaceFusion and ReActor ship GPEN) in ONNX Runtime's CPU provider with
its default threads, and the straightforward network (the reference arithmetic) at 512.
ONNX Runtime is a benchmark-only dependency, never the product's. Times are the median of
`repeats` runs after a first one (under load the best would flatter every contender); the
pipeline, a minute a run, is timed once after its first run.
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import face_weights, images, in_subprocess, pipeline_run, release_network

BUSY_LOOP = "while True: pass"
CONDITIONS = (("quiet", 0), ("1 busy", 1), ("3 busy", 3))


def busy_processes(count):
    processes = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    time.sleep(0.5 if count else 0)  # running before the measured process starts
    return processes


def median_seconds(call, repeats):
    call()  # the first: kernels chosen, weights transformed, memory faulted in
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ours(what, repeats):
    """Seconds for one face through our network (`what` its size) or our parser."""
    from gpen_ext.arch.gpen.fast import FastGPEN
    from gpen_ext.inference import NetworkRunner

    if what == "parser":
        from gpen_ext.face_models import FaceParser, build_parser_network, fast_parser_network
        torch.manual_seed(0)
        parser = FaceParser(fast_parser_network("parsenet", build_parser_network()))
        crop = (torch.rand(512, 512, 3) * 255).to(torch.uint8).numpy()
        return median_seconds(lambda: parser.face_masks([crop]), repeats)
    size = int(what)
    runner = NetworkRunner(FastGPEN(release_network(size)), "cpu", "fp32")
    x = torch.rand(1, 3, size, size) * 2 - 1
    return median_seconds(lambda: runner(x), repeats)


def bare(size, repeats):
    """Seconds for one face through the network as `load_model` returns it, called directly
    (no restorer: the network plans its threads itself)."""
    from gpen_ext.checkpoints import load_model
    network = load_model(release_network(int(size)).state_dict())
    x = torch.rand(1, 3, int(size), int(size)) * 2 - 1
    with torch.inference_mode():
        return median_seconds(lambda: network(x), repeats)


def straightforward(size, repeats):
    network = release_network(int(size))
    x = torch.rand(1, 3, int(size), int(size)) * 2 - 1
    with torch.inference_mode():
        return median_seconds(lambda: network(x), repeats)


def onnx_file(size, folder):
    """The straightforward network exported to ONNX, opset 18."""
    path = Path(folder) / f"gpen_{size}.onnx"
    if not path.is_file():
        network = release_network(int(size))
        x = torch.rand(1, 3, int(size), int(size))
        torch.onnx.export(network, (x,), str(path), opset_version=18, dynamo=True,
                          input_names=["input"], output_names=["output"], verbose=False)
    return path


def onnx_runtime(path, repeats):
    import numpy as np
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    size = session.get_inputs()[0].shape[-1]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    return median_seconds(lambda: session.run(None, {"input": x}), repeats)


def pipeline_seconds():
    return pipeline_run("photo", "512", "parsing", "parsenet", "auto", 1)["seconds"]


def eta_at_a_quarter():
    """The time left that a host's bar would show at a quarter of the work (as the WebUI
    works it out: the time so far over the share done), against the time really left: the
    photo's eight largest faces, default options; (estimated, real) seconds."""
    import tempfile

    from gpen_ext.arch.gpen.fast import FastGPEN
    from gpen_ext.face_models import FaceModels
    from gpen_ext.options import RestoreOptions
    from gpen_ext.pipeline import FaceRestorer

    image, landmarks = images()["photo"]
    seen = []
    with tempfile.TemporaryDirectory() as folder:
        face_weights(Path(folder))
        restorer = FaceRestorer(FastGPEN(release_network(512)), FaceModels(folder, False))
        started = time.monotonic()
        restorer.restore(image, RestoreOptions(max_faces=8, keep_crops=False), landmarks,
                         progress=lambda where: seen.append(
                             (time.monotonic() - started, where.work / max(where.chosen, 1))))
        total = time.monotonic() - started
    at, share = next((at, share) for at, share in seen if share >= 0.25)
    return at * (1 - share) / share, total - at


def checks_cost(repeats=7):
    """The network (GPEN-BFR-512, fp32, one face, the runner the pipeline calls) with its stop
    checks polled as in a restoration, against the same runner's network without the hooks:
    interleaved, best of `repeats` each; (with, without) seconds."""
    from gpen_ext.arch.gpen.fast import FastGPEN
    from gpen_ext.inference import NetworkRunner
    from gpen_ext.progress import FaceCount

    x = torch.rand(1, 3, 512, 512) * 2 - 1
    checked = NetworkRunner(FastGPEN(release_network(512)), "cpu", "fp32")
    unchecked = NetworkRunner(FastGPEN(release_network(512)), "cpu", "fp32")
    for module in unchecked.network.modules():
        module._forward_pre_hooks.clear()
    count = FaceCount(lambda where: None)
    count.found(1)

    def with_checks():
        with count.checker("network", 1):
            checked(x)
    runs = {with_checks: [], (lambda: unchecked(x)): []}
    for call in runs:
        call()
    for _ in range(repeats):
        for call, seconds in runs.items():
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
    return [min(seconds) for seconds in runs.values()]


def stop_seconds(pressed_after=1.0):
    """How long a stop takes to land, as a user pressing Stop a second into the third face:
    the photo's eight largest faces, default options; (seconds from the press to the restore
    returning, the longest network step seen before it)."""
    import tempfile

    from gpen_ext.arch.gpen.fast import FastGPEN
    from gpen_ext.face_models import FaceModels
    from gpen_ext.options import RestoreOptions
    from gpen_ext.pipeline import FaceRestorer, RestorationInterrupted

    image, landmarks = images()["photo"]
    moments = {"steps": []}

    def progress(where):
        now = time.monotonic()
        if where.stage in ("faces found", "pasted"):
            moments["step"] = now
        if where.stage == "network":
            moments["steps"].append(now - moments["step"])
        if where.stage == "pasted" and where.restored == 2:
            moments.setdefault("press", now + pressed_after)
        if now >= moments.get("press", float("inf")):
            raise RestorationInterrupted()
    with tempfile.TemporaryDirectory() as folder:
        face_weights(Path(folder))
        restorer = FaceRestorer(FastGPEN(release_network(512)), FaceModels(folder, False))
        result = restorer.restore(image, RestoreOptions(max_faces=8, keep_crops=False),
                                  landmarks, progress=progress)
    assert result.interrupted
    return time.monotonic() - moments["press"], max(moments["steps"])


def measured(busy, *arguments):
    """One measurement (`benchmark.py --contended ...`) in a fresh process beside `busy`
    busy processes."""
    processes = busy_processes(busy)
    try:
        return in_subprocess("--contended", *arguments, keep=True)
    finally:
        for process in processes:
            process.kill()
            process.wait()


def contended(what, *arguments):
    """The measurement a `--contended` process makes."""
    if what == "ours":
        return ours(*arguments[:1], int(arguments[1]))
    if what == "straightforward":
        return straightforward(arguments[0], int(arguments[1]))
    if what == "bare":
        return bare(arguments[0], int(arguments[1]))
    if what == "onnx":
        return onnx_runtime(arguments[0], int(arguments[1]))
    if what == "stop":
        return stop_seconds()
    if what == "eta":
        return eta_at_a_quarter()
    if what == "checks":
        return checks_cost()
    return pipeline_seconds()


def stop_table():
    """A stop pressed a second into the third of eight faces, quiet and beside busy
    processes: how long it takes to land, against a network step then."""
    print("\nA stop (pressed a second into the third of the photo's eight largest faces, "
          "default options): seconds until the restore returned")
    for name, busy in CONDITIONS:
        landed, step = measured(busy, "stop")
        print(f"{name:>8}: landed in {landed:.2f} s; a network step took up to {step:.2f} s",
              flush=True)
    print("The bar's time left at a quarter of the same eight faces' work, against the time "
          "really left")
    for name, busy in CONDITIONS[:2]:
        estimated, left = measured(busy, "eta")
        print(f"{name:>8}: {estimated:.1f} s estimated, {left:.1f} s left "
              f"({estimated / left:.2f})", flush=True)
    checked, unchecked = measured(0, "checks")
    print(f"The network with its stop checks: {checked:.3f} s against {unchecked:.3f} s "
          f"without ({checked / unchecked:.3f}; GPEN-BFR-512, fp32, one face, quiet)")


def table(folder, repeats=3):
    try:
        import onnxruntime  # noqa: F401
        paths = {size: onnx_file(size, folder) for size in (512, 2048)}
    except ImportError as error:
        print(f"\n(ONNX Runtime rows skipped: {error}; pip install -r benchmarks/requirements.txt)")
        paths = {}
    rows = [("network 512, ours", "ours", 512), ("network 512, load_model", "bare", 512),
            ("network 512, ONNX Runtime", "onnx", 512),
            ("network 512, straightforward", "straightforward", 512),
            ("network 2048, ours", "ours", 2048), ("network 2048, ONNX Runtime", "onnx", 2048),
            ("parser, ours", "ours", "parser"), ("pipeline, 29-face photo", "pipeline", "")]
    print(f"\nOn a shared CPU: seconds (median of {repeats} after a first; the pipeline: one run "
          f"after a first), quiet and beside busy processes, each a core's Python loop; fp32, "
          f"one face, but the pipeline (default options, precision auto, {torch.get_num_threads()}"
          f" threads)")
    print(f"{'':>30}" + "".join(f"{name:>10}" for name, _ in CONDITIONS)
          + f"{'1 busy/quiet':>14}{'3 busy/quiet':>14}", flush=True)
    results = {}
    for label, what, argument in rows:
        if what == "onnx" and argument not in paths:
            continue
        target = paths.get(argument, argument) if what == "onnx" else argument
        seconds = [measured(busy, what, target, repeats) for _, busy in CONDITIONS]
        results[label] = seconds
        print(f"{label:>30}" + "".join(f"{s:>10.2f}" for s in seconds)
              + f"{seconds[1] / seconds[0]:>13.2f}x{seconds[2] / seconds[0]:>13.2f}x",
              flush=True)
    for size in (512, 2048):
        ort = results.get(f"network {size}, ONNX Runtime")
        if ort:
            mine = results[f"network {size}, ours"]
            print(f"network {size}: " + ", ".join(
                f"{name} {theirs / our:.2f}x ONNX Runtime's speed"
                for (name, _), our, theirs in zip(CONDITIONS, mine, ort)))
