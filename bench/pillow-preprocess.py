"""Pillow baseline of the Preprocess per-image work, one process, one image at a time.

usage: pillow-preprocess.py LIST_FILE PASSES FILTER[,FILTER...]
LIST_FILE names one JPEG per line. Every file is read into memory first (reads are not timed),
then each filter runs: a short warm-up, then PASSES timed passes over all images; the fastest
pass is reported. Prints one JSON object: {filter: {images, bestSeconds, allSeconds, cpuSeconds}}.
"""

import io
import json
import sys
import time

from PIL import Image, ImageOps

FILTERS = {"bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}
SHORTER = 256
QUALITY = 90
ORIENTATION = 0x0112


def resized_size(width, height, shorter):
    # torchvision Resize(n), as resizedSize() in src/imaging/preprocess-image.ts
    if width <= height:
        return shorter, max(1, shorter * height // width)
    return max(1, shorter * width // height), shorter


def preprocess(data, resample):
    im = Image.open(io.BytesIO(data))
    # exif_transpose and convert('RGB') both return a full copy even when there is nothing to
    # do; only call them when they change something, as sharp does.
    if im.getexif().get(ORIENTATION, 1) != 1:
        im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    im = im.resize(resized_size(im.width, im.height, SHORTER), resample)
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=QUALITY)
    return out.getvalue()


def main():
    list_file, passes, filters = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    with open(list_file, encoding="utf-8") as f:
        paths = [line.strip() for line in f if line.strip()]
    images = []
    for path in paths:
        with open(path, "rb") as f:
            images.append(f.read())
    report = {}
    for name in filters:
        resample = FILTERS[name]
        for data in images[:10]:
            preprocess(data, resample)
        times, cpu_best = [], None
        for _ in range(passes):
            t0, c0 = time.perf_counter(), time.process_time()
            for data in images:
                preprocess(data, resample)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            if not times or seconds < min(times):
                cpu_best = cpu
            times.append(seconds)
        report[name] = {
            "images": len(images),
            "bestSeconds": min(times),
            "allSeconds": times,
            "cpuSeconds": cpu_best,
        }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
