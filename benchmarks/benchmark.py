"""Speed and memory: the whole restoration with default options, then the network alone.

    python benchmarks/benchmark.py                      # pipeline, video, every network size
    python benchmarks/benchmark.py --no-networks        # the pipeline and video parts only
    python benchmarks/benchmark.py --no-pipeline --no-networks   # the video part only
    python benchmarks/benchmark.py --no-pipeline --sizes 512 --batches 1
    python benchmarks/benchmark.py --no-networks --ray  # pipeline, video and Ray (README)
    python benchmarks/benchmark.py --quality            # bf16 against fp32, the photo's faces
    python benchmarks/benchmark.py --contention         # quiet and beside busy processes
    python benchmarks/benchmark.py --per-face           # --model auto, --parser bisenet
    python benchmarks/benchmark.py --stop               # a stop's landing, quiet and busy
    python benchmarks/benchmark.py --layers             # layer groups against the CPU's peak

Pipeline: GPEN-BFR-512 with every option at its default (parsing mask, batch 4, precision
auto), on the 29-face Solvay photo and on a one-face image, the photo again in fp32, each in a
fresh process set up as the command line sets it up (gpen_ext/allocator.py). Time end to end
and stage by stage (detect, align, network, parse, paste), peak resident memory of the whole
process. In the same run, the reference arithmetic for the same faces: the straightforward
network and facexlib's ParseNet, one face at a time, fp32; and where auto is not fp32, its
quality against fp32 (PSNR of each restored face, parsed masks). The faces are the supplied
landmarks (the weights here are random, so a detector would find nothing); the detector still runs on each image, as it would without
landmarks, and its time is one of the stages.

Video: a 720p clip with one face and the 29-face photo as a clip, restored with default
options as clips (decoded, restored, encoded) against the same frames restored as images;
peak memory over a clip's length; then how steady faces are on footage like users'
(steadiness.py, also alone with --steadiness).

Ray (--ray): a folder of photos through the command line, plainly and on a local Ray with one
and two workers.

Contention (--contention, contention.py): the network, the parser and the pipeline quiet and
beside 1 and 3 busy processes, against ONNX Runtime on the same network.

Networks: the fast path against the straightforward network, per size and batch, fp32.

Weights are random, in the released shapes (speed does not depend on the values). Times are
the best of `--repeats` runs after a first one (a shared machine's slow moments only add
time); memory is of the first.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contention  # noqa: E402
import layers  # noqa: E402
import steadiness  # noqa: E402
from common import (PORTRAIT_FACE_PX, RELEASES, ROOT, SOLVAY, STAGES, PeakSampler,  # noqa: E402
                    best_seconds, face_weights, images, in_subprocess, peak_resident_bytes,
                    pipeline_run, release_network)
from gpen_ext.allocator import keep_freed_memory  # noqa: E402
from gpen_ext.arch.gpen.fast import FastGPEN  # noqa: E402
from gpen_ext.inference import NetworkRunner  # noqa: E402


def precision_quality():
    """The photo's faces restored in fp32 and in bf16 (through the pipeline, parsing mask):
    PSNR of each restored face against fp32's, and how many parsed mask pixels agree."""
    from gpen_ext.face_models import FaceModels, FaceParser
    from gpen_ext.options import RestoreOptions
    from gpen_ext.pipeline import FaceRestorer

    image, landmarks = images()["photo"]
    masks = {}
    original = FaceParser.face_masks

    def recorded(self, crops, regions, precision="fp32"):
        masks.setdefault(precision, []).append(original(self, crops, regions, precision))
        return masks[precision][-1]
    FaceParser.face_masks = recorded
    crops = {}
    with tempfile.TemporaryDirectory() as folder:
        face_weights(Path(folder))
        for precision in ("fp32", "bf16"):
            restorer = FaceRestorer(FastGPEN(release_network(512)), FaceModels(folder, False),
                                    precision=precision)
            result = restorer.restore(image, RestoreOptions(keep_crops=True), landmarks)
            crops[precision] = [face.restored for face in result.faces]
    psnr = [10 * np.log10(255 ** 2 / max(np.mean((a.astype(float) - b) ** 2), 1e-12))
            for a, b in zip(crops["fp32"], crops["bf16"])]
    agree = np.mean(np.concatenate(masks["fp32"]) == np.concatenate(masks["bf16"]))
    return {"faces": len(psnr), "psnr_min": min(psnr), "psnr_mean": float(np.mean(psnr)),
            "mask_agreement": float(agree)}


def reference_run(image_name, repeats):
    """The reference arithmetic: the straightforward network and facexlib's ParseNet, one face
    at a time, on the same aligned faces."""
    from gpen_ext.alignment import align_face
    from gpen_ext.face_models import build_parser_network

    image, landmarks = images()[image_name]
    network = release_network(512)
    torch.manual_seed(0)
    parsenet = build_parser_network().eval()
    crops = [align_face(image[..., :3], points, 512)[0] for points in landmarks]
    inputs = [torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1 for crop in crops]
    stages = {}

    def run():
        stages.update(network=0.0, parse=0.0)
        with torch.inference_mode():
            for x in inputs:
                start = time.perf_counter()
                restored = network(x).clamp(-1, 1)
                middle = time.perf_counter()
                parsenet(restored)[0].argmax(dim=1)
                stages["network"] += middle - start
                stages["parse"] += time.perf_counter() - middle

    run()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        runs.append((time.perf_counter() - start, dict(stages)))
    seconds, stages = min(runs, key=lambda run: run[0])
    return {"seconds": seconds, "stages": stages, "faces": len(inputs),
            "peak_mb": peak_resident_bytes() / 2 ** 20}


def pipeline(image, repeats, model="512", mask="parsing", parser="parsenet", precision="auto"):
    """pipeline_run in a fresh process set up as the command line's."""
    return in_subprocess("--pipeline", image, model, mask, parser, precision, repeats, keep=True)


def stage_row(label, result):
    stages = "".join(f"{result['stages'][s]:>9.2f}" if s in result["stages"] else f"{'':>9}"
                     for s in STAGES)
    print(f"{label:>34} {result['faces']:>5} {result['seconds']:>8.2f}{stages} "
          f"{result['peak_mb']:>8.0f}", flush=True)


def pipeline_table(repeats):
    print(f"\nThe pipeline, default options (GPEN-BFR-512, parsing mask, batch 4, precision "
          f"auto), cpu, allocator as the command line sets it")
    print(f"{'':>34} {'faces':>5} {'total s':>8}" + "".join(f"{s:>9}" for s in STAGES)
          + f" {'peak MB':>8}")
    photo = pipeline("photo", repeats)
    stage_row(f"Solvay photo ({photo['precision']})", photo)
    one = pipeline("one-face", repeats)
    stage_row(f"one-face image ({one['precision']})", one)
    if photo["precision"] != "fp32":
        fp32 = pipeline("photo", repeats, precision="fp32")
        stage_row("Solvay photo, fp32", fp32)
    reference = in_subprocess("--reference", "photo", repeats, keep=True)
    stage_row("reference arithmetic, same faces", reference)
    plain = in_subprocess("--reference", "photo", repeats, keep=False)
    stage_row("  the same under glibc's malloc", plain)
    box = pipeline("photo", repeats, mask="box")
    stage_row("Solvay photo, box mask", box)
    per_face = lambda result: result["seconds"] / result["faces"]  # noqa: E731
    for label, base in (("the reference arithmetic", reference),
                        ("the same in a plain Python process", plain)):
        print(f"photo: {base['seconds'] / photo['seconds']:.2f}x faster than {label} "
              f"({per_face(photo):.2f} against {per_face(base):.2f} s a face; parsing "
              f"{base['stages']['parse'] / photo['stages']['parse']:.2f}x, network "
              f"{base['stages']['network'] / photo['stages']['network']:.2f}x)")
    if photo["precision"] != "fp32":
        quality = in_subprocess("--quality")
        print(f"{photo['precision']}: {fp32['seconds'] / photo['seconds']:.2f}x faster than fp32 "
              f"on the photo; its {quality['faces']} restored faces {quality['psnr_mean']:.1f} dB PSNR "
              f"against fp32's (the worst face {quality['psnr_min']:.1f}), parsed masks agree on "
              f"{100 * quality['mask_agreement']:.2f}% of pixels")
    print(f"peak memory: photo {photo['peak_mb']:.0f} MB, {photo['peak_mb'] / one['peak_mb']:.2f}"
          f" of the one-face image's; the box mask saves {photo['seconds'] - box['seconds']:.1f} s"
          f" on the photo ({box['seconds'] / photo['seconds']:.2f} of the time)")
    per_face_cost_table(repeats, photo)


def per_face_cost_table(repeats, photo):
    """What each face costs with the release sized to it (--model auto) and the light parser
    (--parser bisenet), against the defaults (`photo`, measured in the same run); and a
    portrait's face, which auto sends to a larger release."""
    runs = {"--model auto": pipeline("photo", repeats, model="auto"),
            "--parser bisenet": pipeline("photo", repeats, parser="bisenet"),
            "both": pipeline("photo", repeats, model="auto", parser="bisenet")}
    for label, result in runs.items():
        stage_row(f"Solvay photo, {label}", result)
    portrait = {model: pipeline("portrait", repeats, model=model) for model in ("512", "auto")}
    for model, result in portrait.items():
        stage_row(f"{PORTRAIT_FACE_PX}-px face, {model}", result)
    for label, result in runs.items():
        parse = result["stages"]["parse"] / photo["stages"]["parse"]
        print(f"{label}: {photo['seconds'] / result['seconds']:.2f}x faster than the defaults "
              f"on the photo (network {photo['stages']['network'] / result['stages']['network']:.1f}x,"
              f" parsing {1 / parse:.1f}x), peak {result['peak_mb']:.0f} MB against "
              f"{photo['peak_mb']:.0f}; faces by release {result['releases'] or '512 (all)'}")
    network = {model: result["stages"]["network"] for model, result in portrait.items()}
    print(f"{PORTRAIT_FACE_PX}-px face under auto: releases {portrait['auto']['releases']}, "
          f"network {network['auto']:.2f} s against {network['512']:.2f} s for GPEN-BFR-512 "
          f"({network['auto'] / network['512']:.2f}x); whole image "
          f"{portrait['auto']['seconds'] / portrait['512']['seconds']:.2f}x")


# ---------------------------------------------------------------- the network alone

def measure(size, batch, path, device, precision="fp32", repeats=2):
    """Seconds per face (best of `repeats` calls after the first) and peak memory (MB above
    the loaded model, first call)."""
    network = release_network(size)
    if path == "fast":
        network = FastGPEN(network)
    runner = NetworkRunner(network, device, precision)
    x = torch.rand(batch, 3, size, size) * 2 - 1
    if device == "cuda":  # the batch as the pipeline hands it over
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        runner(x)
        peak = torch.cuda.max_memory_allocated() - base
    else:
        with PeakSampler() as sampler:
            runner(x)
        peak = sampler.peak - sampler.base

    def call():
        runner(x)
        if device == "cuda":
            torch.cuda.synchronize()

    return {"seconds_per_face": best_seconds(call, repeats) / batch, "peak_mb": peak / 2 ** 20}


def precision_psnr(size, device):
    """PSNR (dB) of reduced-precision output against fp32, as images in [0, 1]."""
    network = FastGPEN(release_network(size))
    x = torch.rand(2, 3, size, size) * 2 - 1
    reference = NetworkRunner(network, device, "fp32")(x)
    choices = ["bf16"] + (["fp16"] if device == "cuda" else [])
    results = {}
    for precision in choices:
        reduced = NetworkRunner(network, device, precision)(x)
        a, b = ((reference + 1) / 2).clamp(0, 1), ((reduced + 1) / 2).clamp(0, 1)
        mse = torch.mean((a - b) ** 2).item()
        results[precision] = float("inf") if mse == 0 else 10 * np.log10(1 / mse)
    return results


def network_table(args, keep):
    allocator = "freed memory kept for reuse" if keep else "glibc's default malloc"
    print(f"\nThe network alone: {args.device}, fp32, {allocator}" if args.device == "cpu"
          else f"\nThe network alone: {args.device}, fp32")
    print(f"{'size':>5} {'batch':>5} {'fast s/face':>12} {'straight s/face':>16} {'speed-up':>9} "
          f"{'fast peak MB':>13} {'straight peak MB':>17} {'memory':>7}")
    for size in args.sizes:
        for batch in args.batches:
            fast = in_subprocess("--measure", size, batch, "fast", args.device, "fp32",
                                 args.repeats, keep=keep)
            plain = in_subprocess("--measure", size, batch, "straight", args.device, "fp32",
                                  args.repeats, keep=keep)
            print(f"{size:>5} {batch:>5} {fast['seconds_per_face']:>12.3f} "
                  f"{plain['seconds_per_face']:>16.3f} "
                  f"{plain['seconds_per_face'] / fast['seconds_per_face']:>8.2f}x "
                  f"{fast['peak_mb']:>13.0f} {plain['peak_mb']:>17.0f} "
                  f"{fast['peak_mb'] / max(plain['peak_mb'], 1):>7.2f}", flush=True)


# ---------------------------------------------------------------- video

CLIPS = {  # name -> (width, height, frames, frame rate): a face that pans 2 px a frame
    "720p": (1280, 720, 24, 24), "memory-30": (1920, 1080, 30, 25),
    "memory-100": (1920, 1080, 100, 25), "memory-1000": (1920, 1080, 1000, 25)}
PAN_PX = 2


def clip_frame(width, height, index):
    """The one-face image on a grey frame, `PAN_PX` further each frame, back and forth across
    the frame; its landmarks."""
    face, landmarks = images()["one-face"]
    frame = np.full((height, width, 3), 96, np.uint8)
    travel = width - face.shape[1]
    x = travel - abs(PAN_PX * index % (2 * travel) - travel)
    y = (height - face.shape[0]) // 2
    frame[y:y + face.shape[0], x:x + face.shape[1]] = face
    return frame, landmarks + [x, y]


def make_clips(folder):
    """The clips of CLIPS, H.264 with an AAC tone, and the Solvay photo as a three-frame clip;
    each with its landmarks, per frame."""
    import av
    made = {}
    photo, photo_landmarks = images()["photo"]
    specs = {**{name: spec for name, spec in CLIPS.items()},
             "photo": (photo.shape[1], photo.shape[0], 3, 1)}
    for name, (width, height, count, rate) in specs.items():
        path, landmarks = folder / f"{name}.mp4", []
        with av.open(str(path), "w") as out:
            video = out.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.codec_context.options = {"preset": "veryfast"}
            sound = out.add_stream("aac", rate=16000)
            sound.layout = "mono"
            for index in range(count):
                if name == "photo":
                    pixels, points = photo[..., :3], photo_landmarks
                else:
                    pixels, points = clip_frame(width, height, index)
                landmarks.append(np.asarray(points).reshape(-1, 5, 2).tolist())
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
                frame.pts = index
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
            tone = 0.1 * np.sin(np.arange(int(16000 * count / rate)) / 16000 * 2 * np.pi * 440)
            for start in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(
                    tone[None, start:start + 1024].astype(np.float32), format="fltp",
                    layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
        (folder / f"{name}.json").write_text(json.dumps(landmarks))
        made[name] = path
    return made


def clip_restorer(folder, size=512):
    """The default pipeline with random weights; faces are supplied, and the detector still
    runs on every frame as it would without them (its time counted, its finds unused)."""
    from gpen_ext.face_models import FaceModels
    from gpen_ext.pipeline import FaceRestorer
    face_weights(Path(folder))
    restorer = FaceRestorer(FastGPEN(release_network(size)), FaceModels(folder, False))
    find_faces = restorer.find_faces

    def detect_too(rgb, layout, options, landmarks=None):
        restorer.face_models.detector(options.detection_model).detect(
            rgb, options.detection_threshold, options.detection_max_side)
        return find_faces(rgb, layout, options, landmarks)

    restorer.find_faces = detect_too
    return restorer


def clip_run(path, how, special=False):
    """One clip restored with default options: as a clip ("video": decode, restore, encode)
    or frame by frame as images ("images": decoded first, untimed). `special`: GPEN-BFR-256,
    the box mask and no detector, for the long memory runs."""
    from gpen_ext.options import RestoreOptions
    from gpen_ext.video import open_sink, open_source, restore_clip
    path = Path(path)
    landmarks = [np.array(faces) for faces in json.loads(path.with_suffix(".json").read_text())]
    options = RestoreOptions(keep_crops=False, mask="box" if special else "parsing")
    with tempfile.TemporaryDirectory() as folder:
        restorer = clip_restorer(folder, 256 if special else 512)
        if special:
            del restorer.find_faces  # supplied faces only
        restorer.restore(np.asarray(images()["one-face"][0]), options,
                         images()["one-face"][1])  # the first call: loads, Winograd weights
        source = open_source(path, "video", 150)
        if how == "images":
            frames = [frame.pixels for frame in source.frames(lambda packet: None)]
            source.close()
            start = time.perf_counter()
            faces = sum(len(restorer.restore(frame, options, points).faces)
                        for frame, points in zip(frames, landmarks))
            count = len(frames)
        else:
            sink = open_sink(Path(folder) / f"out{path.suffix}", source)
            start = time.perf_counter()
            count, tally = restore_clip(restorer, source, sink, options, iter(landmarks))
            faces = tally.total()
            probe = clip_probe(path), clip_probe(sink.path)
        seconds = time.perf_counter() - start
    result = {"seconds": seconds, "frames": count, "faces": faces,
              "peak_mb": peak_resident_bytes() / 2 ** 20, "precision": restorer.precision}
    if how == "video":
        result["same"] = probe[0] == probe[1]
        result["probe"] = probe[1]
    return result


def clip_probe(path):
    """What a player reads of a clip: frames, rate, duration, and the audio's packets."""
    import hashlib
    import av
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        digest, frames, last = hashlib.sha256(), 0, 0.0
        for packet in container.demux():
            if packet.stream.type == "audio" and packet.size:
                digest.update(bytes(packet))
            elif packet.stream.type == "video" and packet.size:
                frames += 1
                last = max(last, float((packet.pts + packet.duration) * video.time_base))
        return {"frames": frames, "rate": str(video.average_rate), "duration": round(last, 3),
                "audio": digest.hexdigest()[:12]}


def video_table(folder):
    clips = make_clips(Path(folder))
    from gpen_ext.options import RestoreOptions
    smoothing = RestoreOptions().temporal_smoothing
    print(f"\nVideo: default options (GPEN-BFR-512, parsing mask, batch 4, temporal smoothing "
          f"{smoothing}, precision auto), cpu, decode + restore + encode (H.264 CRF 18), against "
          f"the same frames restored as images; faces supplied, the detector run on every frame")
    print(f"{'clip':>34} {'frames':>6} {'faces':>5} {'clip fps':>9} {'images fps':>11} "
          f"{'ratio':>6} {'peak MB':>8}")
    for name, label in (("720p", "720p, one face"), ("photo", "Solvay photo, 29 faces")):
        clip = in_subprocess("--clip", clips[name], "video", 0, keep=True)
        alone = in_subprocess("--clip", clips[name], "images", 0, keep=True)
        clip_fps, image_fps = clip["frames"] / clip["seconds"], alone["frames"] / alone["seconds"]
        print(f"{label:>34} {clip['frames']:>6} {clip['faces']:>5} {clip_fps:>9.3f} "
              f"{image_fps:>11.3f} {clip_fps / image_fps:>6.2f} {clip['peak_mb']:>8.0f}",
              flush=True)
        print(f"{'':>34} in {clip['precision']}; output plays as the input: {clip['same']} "
              f"{clip['probe']}")
    # lengths past the look-ahead (the decoder's, the steadying window's, the encoder's): what
    # memory holds then is all it ever holds
    special = {name: in_subprocess("--clip", clips[name], "video", 1, keep=True)
               for name in ("memory-100", "memory-1000")}
    default = {name: in_subprocess("--clip", clips[name], "video", 0, keep=True)
               for name in ("memory-30", "memory-100")}
    print(f"peak memory over clip length, 1080p, one face a frame: 1000 frames "
          f"{special['memory-1000']['peak_mb']:.0f} MB against 100 frames "
          f"{special['memory-100']['peak_mb']:.0f} MB "
          f"({special['memory-1000']['peak_mb'] / special['memory-100']['peak_mb']:.2f}; "
          f"GPEN-BFR-256, box mask, no detector: a faster special case, "
          f"{special['memory-1000']['frames'] / special['memory-1000']['seconds']:.1f} fps); "
          f"default options: 100 frames {default['memory-100']['peak_mb']:.0f} MB against 30 "
          f"frames {default['memory-30']['peak_mb']:.0f} MB "
          f"({default['memory-100']['peak_mb'] / default['memory-30']['peak_mb']:.2f})")


# ---------------------------------------------------------------- Ray

ARCHIVE_SIZE = 40


def make_archive(folder):
    """A folder of ARCHIVE_SIZE one-face photos (each a little different), their faces, and a
    models folder with GPEN-BFR-512 and facexlib's networks (random weights)."""
    import cv2
    face, landmarks = images()["one-face"]
    photos, models = folder / "photos", folder / "models"
    photos.mkdir()
    models.mkdir()
    for index in range(ARCHIVE_SIZE):
        shaded = np.clip(face.astype(int) + index % 9, 0, 255).astype(np.uint8)
        cv2.imwrite(str(photos / f"photo{index:02d}.png"), shaded[..., ::-1])
    (folder / "faces.json").write_text(json.dumps(landmarks.tolist()))
    torch.save(release_network(512).state_dict(), models / "GPEN-BFR-512.pth")
    face_weights(models)
    return photos, models


def command_line_seconds(folder, output, *extra):
    """Wall time of `python -m gpen_ext restore` on the archive, as a user runs it."""
    command = [sys.executable, "-m", "gpen_ext", "restore", str(folder / "photos"), "-o",
               str(output), "--models-dir", str(folder / "models"), "--landmarks",
               str(folder / "faces.json"), "--no-download", *map(str, extra)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return seconds


def ray_table(folder):
    make_archive(folder)
    print(f"\nRay: {ARCHIVE_SIZE} one-face photos, default options (faces supplied), the "
          f"command line end to end (start-up, Ray's included)")
    plain = command_line_seconds(folder, folder / "plain")
    rows = [("plain command line, 2 threads", plain, None, None)]
    for workers, threads in ((1, 2), (1, 1), (2, 1)):
        output = folder / f"ray{workers}x{threads}"
        seconds = command_line_seconds(folder, output, "--ray", "--ray-workers", workers,
                                       "--ray-threads-per-worker", threads)
        lines = (output / "gpen-manifest.jsonl").read_text().splitlines()
        per_file = statistics.median(json.loads(line)["seconds"] for line in lines)
        rows.append((f"--ray, {workers} worker(s) of {threads} thread(s)", seconds,
                     (workers, threads), per_file))
    print(f"{'':>40} {'seconds':>8} {'photos/s':>9} {'against plain':>14} "
          f"{'worker s a file':>16}")
    for label, seconds, _, per_file in rows:
        print(f"{label:>40} {seconds:>8.1f} {ARCHIVE_SIZE / seconds:>9.3f} "
              f"{seconds / plain:>13.2f}x" + (f" {per_file:>16.2f}" if per_file else ""),
              flush=True)
    one = next(seconds for _, seconds, shape, _ in rows if shape == (1, 1))
    two = next(seconds for _, seconds, shape, _ in rows if shape == (2, 1))
    print(f"two workers of one thread: {one / two:.2f}x one worker of one thread")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(RELEASES))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-pipeline", action="store_true")
    parser.add_argument("--no-networks", action="store_true")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed runs per measurement, the best kept (default 2)")
    parser.add_argument("--measure", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--quality", action="store_true",
                        help="only bf16 against fp32 on the photo's faces (JSON)")
    parser.add_argument("--reference", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--no-video", action="store_true")
    parser.add_argument("--ray", action="store_true",
                        help="also time a folder on a local Ray (needs requirements-ray.txt)")
    parser.add_argument("--clip", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--steadiness", action="store_true",
                        help="only the steadiness of faces on footage like users' (a few "
                             "minutes)")
    parser.add_argument("--keep-freed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contention", action="store_true",
                        help="only the network, parser and pipeline quiet and beside busy "
                             "processes, against ONNX Runtime (benchmarks/requirements.txt)")
    parser.add_argument("--contended", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--stop", action="store_true",
                        help="only how long a stop takes to land, quiet and beside busy "
                             "processes")
    parser.add_argument("--layers", action="store_true",
                        help="only the network's layer groups against the machine's sgemm "
                             "peak, for --sizes (default 512 and 2048)")
    parser.add_argument("--per-face", action="store_true",
                        help="only the photo with the defaults, --model auto, --parser bisenet "
                             "and both, and a portrait's face with 512 and auto")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.keep_freed:
        keep_freed_memory()
    if args.measure:
        size, batch, path, device, precision, repeats = args.measure
        print(json.dumps(measure(int(size), int(batch), path, device, precision, int(repeats))))
        return
    if args.pipeline:
        image, model, mask, face_parser, precision, repeats = args.pipeline
        print(json.dumps(pipeline_run(image, model, mask, face_parser, precision,
                                      int(repeats))))
        return
    if args.quality:
        print(json.dumps(precision_quality()))
        return
    if args.reference:
        image, repeats = args.reference
        print(json.dumps(reference_run(image, int(repeats))))
        return
    if args.clip:
        path, how, special = args.clip
        print(json.dumps(clip_run(path, how, special == "1")))
        return
    if args.contended:
        print(json.dumps(contention.contended(*args.contended)))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; random weights in the "
          f"released shapes; time: best of {args.repeats} runs after the first, memory of the "
          f"first")
    if args.contention:
        with tempfile.TemporaryDirectory() as folder:
            contention.table(folder, max(args.repeats, 3))
        contention.stop_table()
        return
    if args.stop:
        contention.stop_table()
        return
    if args.steadiness:
        steadiness.table()
        return
    if args.layers:
        layers.table(args.sizes if args.sizes != sorted(RELEASES) else (512, 2048))
        return
    if args.per_face:
        photo = pipeline("photo", args.repeats)
        stage_row(f"Solvay photo ({photo['precision']})", photo)
        per_face_cost_table(args.repeats, photo)
        return
    if not args.no_pipeline and args.device == "cpu" and SOLVAY.is_file():
        pipeline_table(args.repeats)
    if not args.no_video and args.device == "cpu" and SOLVAY.is_file():
        with tempfile.TemporaryDirectory() as folder:
            video_table(folder)
        steadiness.table()
    if args.ray:
        with tempfile.TemporaryDirectory() as folder:
            ray_table(Path(folder))
    if args.no_networks:
        return
    for keep in ([False, True] if args.device == "cpu" else [False]):
        network_table(args, keep)
    print()
    size = 512 if 512 in args.sizes else args.sizes[0]
    for precision, psnr in precision_psnr(size, args.device).items():
        timing = in_subprocess("--measure", size, 1, "fast", args.device, precision,
                               args.repeats, keep=True)
        print(f"fast path in {precision} at {size}: {timing['seconds_per_face']:.3f} s/face, "
              f"PSNR {psnr:.1f} dB against fp32")


if __name__ == "__main__":
    main()
