"""Evaluate a trained FFP generator on a dataset's test videos with the paper's protocol.

    python eval.py --trained_model weights/ped2_latest.pth                   # the checkpoint's dataset, under data/
    python eval.py --trained_model weights/ped2_cpu.pth --save_video         # plus a heatmap video per test video
    python eval.py --trained_model weights/ped2_cpu.pth --smooth_sigma 3     # scores smoothed over time
    python eval.py --trained_model ped2.onnx                                 # an ONNX model, on ONNX Runtime

Prints the micro-AUC (the paper's headline: PSNR min-max normalised within each test video, first 4 frames
dropped, all videos pooled), macro-AUC, EER, AP and pixel AUROC, each line naming its protocol knobs, and writes
results/<dataset>_<checkpoint>/ (scores.csv, metrics.json, plots, index.html). The model's settings come from
the checkpoint, this machine's (--data_root, --device, --threads, ...) from the command.
Protocol, metrics and outputs: docs/evaluation.md.
"""

from __future__ import annotations

import argparse

from cli import ArgumentParser, answer_flags_first, run_cli
from config import FLAG_GROUPS
from config_flags import add_config_flags, check_flag_values, runtime_default_text
from errors import FFPError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """eval.py's flags: its own, the dataset to score and this machine's settings. Everything that defines the
    model (size, widths, frames) comes from the checkpoint; nothing of the training machine does."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--trained_model",
        required=True,
        help="checkpoint written by train.py or export.py, or an ONNX model (.onnx) from export.py --format onnx",
    )
    parser.add_argument(
        "--out_dir", default="results", help="parent folder of the run's result folder (default: results)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing result folder")
    parser.add_argument(
        "--smooth_sigma",
        type=float,
        default=0.0,
        help="temporal Gaussian smoothing of scores, in frames (default: 0 = none, the paper)",
    )
    parser.add_argument("--save_video", action="store_true", help="write a heatmap .mp4 per test video")
    parser.add_argument("--no_pixel_auroc", action="store_true", help="skip pixel-level AUROC against masks")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    add_config_flags(
        parser,
        ("data", "machine"),
        only=("dataset", "data_root", *FLAG_GROUPS["machine"]),
        defaults=runtime_default_text,
    )
    args = parser.parse_args(argv)
    if args.smooth_sigma < 0:
        raise FFPError(f"--smooth_sigma must be >= 0 (frames), got {args.smooth_sigma}")
    check_flag_values(args)
    return args


if __name__ == "__main__":
    answer_flags_first(parse_args)  # --help and flag errors answer before torch is imported (seconds)

# The heavy imports, after the flags are known to be good (style checkers: E402 is intended here).
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config import FOLDER_FPS, Config
from dataset import Video, labels_by_number, prepare_dataset, scored_labels
from dataset.resample import at_model_rate, continuity, holes_note, rate_note, video_fps
from evaluation.metrics import (
    PixelAUROC,
    aligned_videos,
    compute_metrics,
    format_metrics_table,
    inverted_labels_note,
    metric_rows,
    video_scores,
)
from evaluation.pages import StagedResult, file_stems
from evaluation.report import EvalResults, ReportPage, worst_frames, write_report
from evaluation.scores import flat_videos_note
from evaluation.video import HeatmapVideoWriter, ScoreStrip, choose_vmax
from inference.runtime import ModelInfo, Predictor, predict_frames
from model_file import environment, load_model
from utils.progress import PlainLines, Progress, duration_text
from utils.threads import recheck_threads

# Pixels scored for pixel AUROC: ~1.6% of Ped2's 126M scored test pixels at 256×256, and tens of thousands of
# abnormal ones, so sampling noise is far below differences between models while memory stays ~50 MB.
PIXEL_SAMPLES = 2_000_000
PIXEL_SEED = 0


def predict_video(
    predictor: Predictor,
    video: Video,
    cfg: Config,
    pixels: PixelAUROC | None,
    keep: bool,
    model_fps: float | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple | None, list]:
    """One test video: PSNR of its scored frames (float32 (N,)), their frame numbers in the source ((N,) int64),
    with `keep` its (frames, error maps), and its breaks (`Continuity.holes`).

    Scored are the frames after the first in_frames whose window spans no break (a gap in the frame numbers or a
    hole in time: `dataset.resample.Continuity`). pixels: when given, every batch's error maps and the matching masks
    are added to it. keep: also return the targets N×H×W×3 uint8 and error maps N×H×W float16 (for the heatmap
    video). Error maps are computed only when `pixels` or `keep` needs them. model_fps: the training footage's frame
    rate; a faster video is resampled to it (its kept frames keep their numbers, so labels still pair by number).
    """
    psnr, numbers, frames, maps = [], [], [], []
    batches = at_model_rate(predictor.batches(video, cfg, cfg.eval_batch_size), video, model_fps)
    rule = continuity(video, model_fps)
    for pred in predictor.stream(batches):
        ok = rule.scorable(batches, pred.first_index, len(pred.psnr), cfg.in_frames)
        psnr.append(pred.psnr[ok])
        numbers.append(np.asarray(batches.numbers[pred.first_index : pred.first_index + len(ok)], np.int64)[ok])
        if (pixels is None and not keep) or not ok.any():
            continue
        err = pred.error_maps()[ok]
        if pixels is not None and video.masks is not None:  # masks are per frame number, like labels
            pixels.add(err, np.stack([video.masks.read(n, tuple(err.shape[-2:])) for n in numbers[-1]]))
        if keep:
            frames.append(pred.target_images()[ok])
            maps.append(err.astype(np.float16))
    holes = rule.holes(batches)
    if not psnr:  # shorter than one window: nothing to score
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64), None, holes
    kept = (np.concatenate(frames), np.concatenate(maps)) if keep else None
    return np.concatenate(psnr).astype(np.float32), np.concatenate(numbers), kept, holes


def write_heatmap_video(
    path: Path, kept: tuple, scores: np.ndarray, labels: np.ndarray | None, first_frame: int
) -> None:
    """mp4 of one video from its kept (frames N×H×W×3 uint8, error maps N×H×W) with a fixed heatmap scale
    (choose_vmax over the whole video); scores/labels (N,) belong to video frames first_frame.."""
    frames, maps = kept
    vmax = choose_vmax(m.astype(np.float32) for m in maps)
    strip = ScoreStrip(curve_length=len(maps), first_frame=first_frame)
    with HeatmapVideoWriter(path, FOLDER_FPS, vmax=vmax, size=maps.shape[1:], strip=strip) as writer:
        writer.add_batch(frames, maps, scores, labels)


def pixel_metrics(pixels: PixelAUROC | None, size: tuple[int, int], in_frames: int, reason: str) -> dict:
    """metrics.json entries of pixel AUROC: value + protocol string, or why it was not computed."""
    if pixels is None:
        return {"pixel_auroc_skipped": reason}
    try:
        value = pixels.result()
    except FFPError as exc:  # e.g. masks without abnormal pixels: report, don't fail the frame-level eval
        return {"pixel_auroc_skipped": str(exc)}
    sampling = f"uniform random subsample of {pixels.n_sampled:,} of {pixels.n_pixels:,} pixels (seed {pixels.seed})"
    return {
        "pixel_auroc": value,
        "pixel_auroc_sampling": sampling,
        "pixel_auroc_protocol": (
            f"ROC-AUC of per-pixel squared error (mean over RGB, frames on [0, 1]) of the {pixels.n_frames} "
            f"scored frames (frame index >= {in_frames}) against ground-truth masks resized to the "
            f"{size[0]}x{size[1]} error-map size with nearest neighbour (mask > 0 = abnormal), all test "
            f"videos pooled, no normalisation or smoothing; {sampling}"
        ),
    }


@dataclass(frozen=True)
class PassOptions:
    """What the flags ask of the prediction pass. pixel_auroc: score pixel AUROC when every test video has masks
    (--no_pixel_auroc turns it off); save_video: write heatmap videos (--save_video); smooth_sigma: --smooth_sigma,
    in frames, for the heatmap videos' score curves; model_fps: the training footage's frame rate, to which faster
    test videos are resampled (None: unknown, no resampling)."""

    pixel_auroc: bool = True
    save_video: bool = False
    smooth_sigma: float = 0.0
    model_fps: float | None = None


def evaluate(
    predictor: Predictor, files, labels: dict[str, np.ndarray] | None, cfg: Config, out: Path, opts: PassOptions
) -> tuple[dict, dict, dict, dict, list[str]]:
    """Predict every test video (writing heatmap videos into out/videos with `opts.save_video`).

    `labels`: scored_labels of the test videos, or None when unlabelled; each video's entry is replaced by its
    labels at the frame numbers its prediction pass scored (`labels_by_number`: paired by number, never position).
    Returns ({video: PSNR (N_v,)}, {video: frame numbers (N_v,)}, pixel-AUROC metrics entries,
    {video: mp4 path relative to out}, a note per video with breaks whose next frames were not scored).
    """
    has_masks = bool(files.test) and all(v.masks is not None for v in files.test)
    pixels = PixelAUROC(PIXEL_SAMPLES, PIXEL_SEED) if has_masks and opts.pixel_auroc else None
    reason = "--no_pixel_auroc" if has_masks else "the test videos have no pixel masks"
    stems = file_stems(v.name for v in files.test)
    psnr, numbers, links, notes = {}, {}, {}, []
    # --threads 0 (auto): the torch threads follow the other processes' load, re-checked between videos
    lines = PlainLines(min_interval_s=5)
    progress = Progress(len(files.test), "test videos", unit="video", lines=lines, on_update=recheck_threads)
    for video in files.test:
        psnr[video.name], numbers[video.name], kept, holes = predict_video(
            predictor, video, cfg, pixels, opts.save_video, opts.model_fps
        )
        notes += [n for n in [holes_note(holes, cfg.in_frames, f"test video {video.name}")] if n]
        if labels is not None:
            labels[video.name] = labels_by_number(video, numbers[video.name])
        if kept is not None:
            links[video.name] = f"videos/{stems[video.name]}.mp4"
            write_heatmap_video(
                out / links[video.name],
                kept,
                video_scores(psnr[video.name], opts.smooth_sigma),
                None if labels is None else labels[video.name],
                cfg.in_frames,
            )
        progress.update()
    progress.close()
    return psnr, numbers, pixel_metrics(pixels, (cfg.height, cfg.width), cfg.in_frames, reason), links, notes


def numbering_notes(files) -> list[str]:
    """One note per test video with missing frames (a folder's missing files, a file's damaged frames, an early
    end): scored on the frames it has, labels paired by frame number. FFPError for a test video whose frame numbers
    are uncertain: its frames cannot be paired with labels or reported by number."""
    notes = []
    for video in files.test:
        report = video.source.report()
        if report.uncertain:
            raise FFPError(
                f"test video {video.name} ({video.where}): {'; '.join(report.problems())} — eval.py needs every "
                f"scored frame's true number: re-encode or replace the file (detect.py scores what decodes)"
            )
        if report.problems():
            notes.append(
                f"test video {video.name} ({video.where}): {'; '.join(report.problems())}; scored the "
                f"{len(video)} frames present, labels paired by frame number"
            )
    return notes


def worst_examples(
    predictor: Predictor, files, psnr: dict, labels: dict, numbers: dict, cfg: Config, sigma: float
) -> list[dict]:
    """The report's worst false alarms and misses (`worst_frames`), re-predicted for their images (an example
    whose frame cannot be re-predicted, which an undamaged video never has, is left out)."""
    examples = worst_frames(aligned_videos(psnr, labels), numbers, sigma)
    by_name = {v.name: v for v in files.test}
    for name in dict.fromkeys(ex["video"] for ex in examples):
        wanted = [ex for ex in examples if ex["video"] == name]
        images = predict_frames(predictor, by_name[name], [ex["frame"] for ex in wanted], cfg)
        for ex in wanted:
            found = images.get(ex["frame"])
            if found is not None:
                ex.update(frame_rgb=found["frame"], prediction_rgb=found["prediction"], error=found["error"])
    return [ex for ex in examples if "frame_rgb" in ex]


def report_header(cfg: Config, trained: Config, info: ModelInfo, predictor: Predictor, seconds: float) -> dict:
    """The top of the report: what was evaluated, with what, where, and how long it took."""
    selected = {True: "SELECTED WITH TEST LABELS (optimistic)", False: "not selected with test labels"}.get(
        info.selected_with_test_labels
    )
    train_seconds = info.train_seconds
    return {
        "dataset": cfg.dataset
        if cfg.dataset == trained.dataset
        else f"{cfg.dataset} (the model was trained on {trained.dataset})",
        "checkpoint": f"{info.path} (step {info.step if info.step is not None else '?'}, {selected})",
        "model": f"{trained.height}×{trained.width}, generator widths {','.join(map(str, trained.g_widths))}, "
        f"flow estimator in training: {info.flownet or trained.flownet}",
        **environment(predictor, "evaluated"),
        "evaluation time": duration_text(seconds),
        "training time": duration_text(train_seconds) if train_seconds is not None else "not recorded",
    }


def start_notes(files, info: ModelInfo, cfg: Config) -> tuple[list[str], str | None]:
    """Printed before the long prediction pass: the numbering and frame-rate notes (returned, for the report too),
    the label notes, where the labels come from, and why no AUC will be computed (returned: None when it will)."""
    numbering = numbering_notes(files)
    rates = [video_fps(v) for v in files.test]
    for rate in sorted(set(rates)):  # said once per frame rate
        note = rate_note(rate, info.fps, f"{rates.count(rate)} test video(s)")
        numbering += [note] if note else []
    for note in numbering:
        print(f"note: {note}")
    for note in files.notes.lines:
        print(f"labels: {note}")
    skipped = files.why_no_auc(cfg.in_frames)
    if skipped:
        skipped = (
            f"AUC needs frame labels of normal and abnormal frames: {skipped} (docs/datasets.md lists the "
            f"label formats)"
        )
        print(f"no AUC: {skipped}; scoring the test videos all the same", flush=True)
    else:
        print(f"labels: {files.label_source}", flush=True)
    return numbering, skipped


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    args = parse_args(argv)
    predictor, info = load_model(args)  # a checkpoint (PyTorch) or an ONNX file (ONNX Runtime)
    ckpt_path, cfg = info.path, info.cfg
    trained = info.trained
    if cfg.dataset != trained.dataset:
        print(f"note: evaluating on dataset {cfg.dataset} a model trained on {trained.dataset} ({ckpt_path})")
    files = prepare_dataset(cfg, split="test")  # test videos found (or FFPError); training videos are not needed
    numbering, skipped = start_notes(files, info, cfg)
    knobs = {
        "checkpoint": ckpt_path.name,
        "selected_with_test_labels": info.selected_with_test_labels,
        "dropped_frames": cfg.in_frames,
        "smooth_sigma": args.smooth_sigma,
    }
    with StagedResult(args.out_dir, f"{cfg.dataset}_{ckpt_path.stem}", args.overwrite) as stage:
        labels = None if skipped else scored_labels(files.test, cfg.in_frames)
        opts = PassOptions(not args.no_pixel_auroc, args.save_video, args.smooth_sigma, info.fps)
        psnr, numbers, pixel, links, breaks = evaluate(predictor, files, labels, cfg, stage.dir, opts)
        metrics = None if labels is None else {**compute_metrics(psnr, labels, smooth_sigma=args.smooth_sigma), **pixel}
        auc = None if metrics is None else metrics["micro_auc"]
        inverted = inverted_labels_note(auc, "frame-level micro-AUC", files.label_source)
        flat = flat_videos_note(psnr)
        said = [n for n in (flat, inverted) if n] + breaks  # printed at the end
        notes = said + numbering + [f"labels: {n}" for n in files.notes.lines]
        examples = (
            [] if labels is None else worst_examples(predictor, files, psnr, labels, numbers, cfg, args.smooth_sigma)
        )
        meta = result_meta(cfg, info, knobs, files.label_source, skipped)
        meta["eval_seconds"] = round(time.time() - started, 1)
        meta["run"] = report_header(cfg, trained, info, predictor, meta["eval_seconds"])
        page = ReportPage(meta, links, notes, meta["run"], examples, history=(info.state or {}).get("history") or [])
        write_report(stage.dir, EvalResults(psnr, labels, metrics, numbers), page)
    print_summary(files, psnr, metrics, knobs, skipped, said, stage.path)
    return 0


def result_meta(cfg: Config, info: ModelInfo, knobs: dict, label_source: str, skipped: str | None) -> dict:
    """metrics.json's run entries besides the metrics: the knobs, config, checkpoint, where the labels came from,
    and why no AUC was computed (when so)."""
    meta = {
        **knobs,
        "config": cfg.to_dict(),
        "checkpoint_path": str(info.path),
        "step": info.step,
        "dataset": cfg.dataset,
        "label_source": label_source or None,
        "psnr_range": "frames on [0, 1], PSNR = 10 log10(1 / MSE)",
    }
    if skipped:
        meta["auc_skipped"] = skipped
    return meta


def print_summary(
    files, psnr: dict, metrics: dict | None, knobs: dict, skipped: str | None, notes: list[str], where: Path
) -> None:
    """The closing lines: notes (flat videos, labels that look inverted), the metric table, the labels' source and
    the micro-AUC; or, without labels, why no AUC."""
    for note in notes:
        print(f"note: {note}")
    n_frames = sum(len(p) for p in psnr.values())
    scored = f"scored {n_frames} frames of {len(files.test)} test videos; results in {where}"
    if skipped or metrics is None:
        print(f"no AUC: {skipped}")
        print(scored)
        return
    print(format_metrics_table(metrics, knobs))
    if "pixel_auroc_skipped" in metrics:
        print(f"  pixel AUROC not computed: {metrics['pixel_auroc_skipped']}")
    print(scored)
    print(f"labels: {files.label_source}")
    micro = metric_rows(metrics, knobs)[0]
    print(f"micro-AUC: {micro[1]}  [{micro[2]}]")


if __name__ == "__main__":
    sys.exit(run_cli(main))
