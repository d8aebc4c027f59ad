"""Metrics of the paper's protocol against hand-computed fixtures (the arithmetic is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from errors import FFPError
from evaluation.metrics import (
    PixelAUROC,
    compute_metrics,
    equal_error_rate,
    format_metrics_table,
    inverted_labels_note,
    padded_auc,
)
from evaluation.scores import anomaly_scores, error_map, minmax_normalise, psnr_per_frame, stream_scores, true_runs

KNOBS = {"checkpoint": "ped2_latest.pth", "selected_with_test_labels": False, "dropped_frames": 4}

# One 5-frame video. PSNR [30, 26, 28, 22, 20]: min 20, max 30, so
# minmax = [1, .6, .8, .2, 0] and score = 1 - minmax = [0, .4, .2, .8, 1].
FIVE_PSNR = np.array([30.0, 26.0, 28.0, 22.0, 20.0])
FIVE_LABELS = np.array([0, 0, 1, 0, 1])


def pixel_auroc(error_maps, masks, max_pixels: int = 2_000_000, seed: int = 0) -> float:
    """PixelAUROC over whole lists of error maps and masks (what eval.py feeds it frame by frame)."""
    acc = PixelAUROC(max_pixels, seed)
    if len(error_maps) != len(masks):
        raise FFPError(f"pixel AUROC: error maps and masks differ in count ({len(error_maps)} vs {len(masks)})")
    for err, mask in zip(error_maps, masks):
        acc.add(err, mask)
    return acc.result()


# ----------------------------------------------------------------------------- scores.py


def test_psnr_of_known_mse():
    # A difference of 0.2 on [-1, 1] is 0.1 on [0, 1] -> MSE 0.01 -> 10*log10(1/0.01) = 20 dB.
    # A difference of 0.02 on [-1, 1] is 0.01 on [0, 1] -> MSE 1e-4 -> 40 dB.
    target = torch.zeros(2, 3, 8, 8)
    pred = target.clone()
    pred[0] += 0.2
    pred[1] -= 0.02
    psnr = psnr_per_frame(pred, target)
    assert psnr.dtype == torch.float32 and psnr.shape == (2,)
    assert psnr.tolist() == pytest.approx([20.0, 40.0], abs=1e-3)


def test_psnr_identical_frames_is_large_and_finite():
    # MSE is clamped at 1e-10, so identical frames give 10*log10(1e10) = 100 dB instead of inf.
    x = torch.rand(1, 3, 4, 4) * 2 - 1
    psnr = psnr_per_frame(x, x)
    assert torch.isfinite(psnr).all() and psnr.item() == pytest.approx(100.0, abs=1e-3)


def test_error_map_halves_differences():
    # Channel 0 differs by 0.2 ([-1,1]) = 0.1 ([0,1]) -> 0.01; channels 1, 2 equal -> mean 0.01/3.
    target = torch.zeros(1, 3, 2, 2)
    pred = target.clone()
    pred[:, 0] = 0.2
    err = error_map(pred, target)
    assert err.shape == (1, 2, 2)
    assert np.allclose(err.numpy(), 0.01 / 3, atol=1e-7)
    # Its spatial mean is the frame MSE, consistent with psnr_per_frame.
    assert psnr_per_frame(pred, target).item() == pytest.approx(10 * np.log10(1 / err.mean().item()), abs=1e-3)


def test_minmax_and_score_chain_three_videos():
    # A: [20, 25, 30] -> minmax [0, .5, 1] -> score [1, .5, 0]
    # B: constant [40, 40] -> no spread (is_flat): minmax ones -> score [0, 0] (normal, documented)
    # C: [10, 14, 12, 18] -> min 10, max 18 -> minmax [0, .5, .25, 1] -> score [1, .5, .75, 0]
    assert minmax_normalise(np.array([20.0, 25.0, 30.0])).tolist() == [0.0, 0.5, 1.0]
    assert anomaly_scores(np.array([20.0, 25.0, 30.0])).tolist() == [1.0, 0.5, 0.0]
    assert minmax_normalise(np.array([40.0, 40.0])).tolist() == [1.0, 1.0]
    assert anomaly_scores(np.array([40.0, 40.0])).tolist() == [0.0, 0.0]
    assert anomaly_scores(np.array([10.0, 14.0, 12.0, 18.0])).tolist() == [1.0, 0.5, 0.75, 0.0]
    # Labels A [1,0,0], B [0,1], C [1,0,1,0]. Positives' scores {1 (A), 0 (B), 1 (C), .75 (C)};
    # negatives' {.5, 0 (A), 0 (B), .5, 0 (C)}. Pairs won (tie = 1/2):
    # each positive 1 beats all 5 -> 10; .75 beats all 5 -> 5; 0 (B) ties the three 0s -> 1.5.
    # AUC = 16.5 / (4 * 5) = 0.825.
    m = compute_metrics(
        {"A": np.array([20.0, 25.0, 30.0]), "B": np.array([40.0, 40.0]), "C": np.array([10.0, 14.0, 12.0, 18.0])},
        {"A": np.array([1, 0, 0]), "B": np.array([0, 1]), "C": np.array([1, 0, 1, 0])},
    )
    assert m["micro_auc"] == pytest.approx(0.825)
    assert m["n_frames"] == 9 and m["n_abnormal"] == 4


def test_stream_scores_count_training_stds_below_the_baseline():
    psnr = np.array([30.0, 28.0, 33.0])
    assert stream_scores(psnr, 30.0, 2.0).tolist() == [0.0, 1.0, -1.5]
    assert stream_scores(psnr, np.array([30.0, 29.0, 30.0]), 2.0).tolist() == [0.0, 0.5, -1.5]  # a baseline per frame


def test_true_runs():
    assert true_runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 2), (4, 4)]
    assert true_runs(np.zeros(3, bool)) == []


# ----------------------------------------------------------------------------- frame-level metrics


def test_five_frame_auc_ap_eer_by_hand():
    m = compute_metrics({"v": FIVE_PSNR}, {"v": FIVE_LABELS})
    # Scores [0, .4, .2, .8, 1]; positives {.2, 1}, negatives {0, .4, .8}.
    # .2 beats only 0 -> 1 pair; 1 beats all three -> 3 pairs. AUC = 4 / (2*3) = 2/3.
    assert m["micro_auc"] == pytest.approx(2 / 3)
    # Within one video -PSNR ranks frames exactly like the score, so the raw AUC is also 2/3.
    assert m["raw_psnr_micro_auc"] == pytest.approx(2 / 3)
    # Ranked by score: 1 (pos), .8, .4 (neg), .2 (pos), 0 (neg).
    # AP = sum over positives of (recall step) * precision = 0.5 * 1/1 + 0.5 * 2/4 = 0.75.
    assert m["ap"] == pytest.approx(0.75)
    # ROC points (FPR, TPR): (0,0) (0,.5) (1/3,.5) (2/3,.5) (2/3,1) (1,1). FNR = .5 on the flat part,
    # where FPR runs from 1/3 to 2/3: FPR = FNR at FPR = .5 -> EER = 0.5.
    assert m["eer"] == pytest.approx(0.5)
    assert isinstance(m["n_frames"], int) and m["n_frames"] == 5 and m["n_abnormal"] == 2
    assert all(type(m[k]) is float for k in ("micro_auc", "macro_auc", "eer", "ap", "raw_psnr_micro_auc"))


def test_eer_interpolates_on_a_sloped_segment():
    # Negatives {.1, .5}, positives {.5, .9}. ROC: (0,0) -> (0,.5) at threshold .9 -> (.5,1) at .5
    # (the tie moves FPR and TPR together) -> (1,1). On the segment (0,.5)-(.5,1): FPR = t/2,
    # FNR = .5 - t/2; equal at t = .5 -> EER = .25.
    assert equal_error_rate(np.array([0, 0, 1, 1]), np.array([0.1, 0.5, 0.5, 0.9])) == pytest.approx(0.25)
    # Perfect separation: ROC passes through (0, 1) -> EER 0.
    assert equal_error_rate(np.array([0, 1]), np.array([0.2, 0.8])) == pytest.approx(0.0)


def test_pad_trick_all_abnormal_and_all_normal_videos():
    # PSNR [30, 20, 25] -> score [0, 1, .5].
    # All abnormal, padded: labels [0 | 1 1 1 | 1], scores [0 | 0 1 .5 | 1]. One negative (pad, 0);
    # positives 0 (tie: .5), 1, .5, 1 (pad) each beat it -> 3.5 / 4 = 0.875.
    assert padded_auc(np.array([1, 1, 1]), np.array([0.0, 1.0, 0.5])) == pytest.approx(0.875)
    # All normal, padded: labels [0 | 0 0 0 | 1], scores [0 | 0 1 .5 | 1]. One positive (pad, 1);
    # it beats 0, 0, .5 and ties 1 -> 3.5 / 4 = 0.875.
    assert padded_auc(np.array([0, 0, 0]), np.array([0.0, 1.0, 0.5])) == pytest.approx(0.875)
    m = compute_metrics(
        {"ab": np.array([30.0, 20.0, 25.0]), "no": np.array([30.0, 20.0, 25.0])},
        {"ab": np.array([1, 1, 1]), "no": np.array([0, 0, 0])},
    )
    assert m["per_video_auc"] == pytest.approx({"ab": 0.875, "no": 0.875})
    assert m["macro_auc"] == pytest.approx(0.875)
    # Micro: both classes have scores {0, 1, .5}: wins 2 + 1 + 0 plus ties 3 * .5 = 4.5 of 9 -> 0.5.
    assert m["micro_auc"] == pytest.approx(0.5)


def test_smoothing_removes_an_isolated_spike():
    # 21 frames: PSNR 30, one normal frame (4) dips to 20, abnormal frames 14..20 sit at 25.
    # Scores: normal 0, spike 1, abnormal .5. Unsmoothed: each abnormal frame beats 13 of the 14
    # normal frames and loses to the spike -> AUC = 13/14.
    psnr = np.full(21, 30.0)
    psnr[4], psnr[14:] = 20.0, 25.0
    labels = (np.arange(21) >= 14).astype(int)
    raw = compute_metrics({"v": psnr}, {"v": labels})
    assert raw["micro_auc"] == pytest.approx(13 / 14)
    # sigma = 2: the spike's peak drops to about 1/(2*sqrt(2*pi)) = .2, while the sustained abnormal
    # segment stays above .29 even at its first frame -> every abnormal frame outranks every normal one.
    smoothed = compute_metrics({"v": psnr}, {"v": labels}, smooth_sigma=2.0)
    assert smoothed["micro_auc"] == pytest.approx(1.0)
    assert smoothed["raw_psnr_micro_auc"] == pytest.approx(1.0)
    assert smoothed["smooth_sigma"] == 2.0


def test_raw_psnr_auc_differs_when_normalisation_matters():
    # Easy scene A: PSNR [40 normal, 38 abnormal]; hard scene B: [30 normal, 28 abnormal].
    # Per-video scores: A [0, 1], B [0, 1] -> micro AUC 1.
    # Raw -PSNR: positives {-38, -28}, negatives {-40, -30}: -38 beats -40 only, -28 beats both
    # -> 3 / 4 = 0.75 (B's normal frame looks worse than A's abnormal one).
    m = compute_metrics(
        {"A": np.array([40.0, 38.0]), "B": np.array([30.0, 28.0])}, {"A": np.array([0, 1]), "B": np.array([0, 1])}
    )
    assert m["micro_auc"] == pytest.approx(1.0)
    assert m["raw_psnr_micro_auc"] == pytest.approx(0.75)


def test_protocol_knobs_recorded():
    m = compute_metrics({"v": FIVE_PSNR}, {"v": FIVE_LABELS})
    assert m["normalisation"] == "per-video min-max"
    assert "normal frame scored 0" in m["macro_pad_trick"] and "abnormal frame" in m["macro_pad_trick"]


# ----------------------------------------------------------------------------- error paths


def test_length_mismatch_names_video_and_counts():
    with pytest.raises(FFPError) as err:
        compute_metrics({"Test007": np.zeros(5)}, {"Test007": np.zeros(4, int)})
    assert "Test007" in str(err.value) and "5" in str(err.value) and "4" in str(err.value)


@pytest.mark.parametrize(
    "psnr, labels, fragment",
    [
        ({"v": np.array([1.0, 2.0])}, {"v": np.array([0, 2])}, "must be 0"),
        ({}, {}, "no scored frames"),
        ({"v": np.array([])}, {"v": np.array([], int)}, "no scored frames"),
        ({"v": np.array([1.0, 2.0])}, {"v": np.array([0, 0])}, "undefined"),
        ({"v": np.array([1.0, np.nan])}, {"v": np.array([0, 1])}, "NaN"),
        ({"v": np.array([1.0])}, {"w": np.array([0])}, "appear in only one"),
    ],
)
def test_bad_inputs_raise_ffperror(psnr, labels, fragment):
    with pytest.raises(FFPError, match=fragment):
        compute_metrics(psnr, labels)


# ----------------------------------------------------------------------------- pixel AUROC


def _pixel_case(invert: bool):
    """Three 6x8 frames whose masked pixels have larger (or, inverted, smaller) error than the rest."""
    rng = np.random.default_rng(1)
    masks = [np.zeros((6, 8)) for _ in range(3)]
    masks[0][1:3, 2:5] = 1
    masks[2][4:, :] = 1
    errs = [np.where(m > 0.5, 0.5 + rng.random(m.shape) * 0.5, rng.random(m.shape) * 0.4) for m in masks]
    return ([-e for e in errs] if invert else errs), masks


def test_pixel_auroc_perfect_and_inverted():
    errs, masks = _pixel_case(invert=False)
    assert pixel_auroc(errs, masks) == pytest.approx(1.0)
    errs, masks = _pixel_case(invert=True)
    assert pixel_auroc(errs, masks) == pytest.approx(0.0)


def test_pixel_auroc_subsample_keeps_a_perfect_separation():
    # Any subsample of a perfectly separated set is still perfectly separated (if both classes remain).
    errs, masks = _pixel_case(invert=False)
    assert pixel_auroc(errs, masks, max_pixels=60, seed=3) == pytest.approx(1.0)


def test_pixel_auroc_shape_and_count_errors():
    with pytest.raises(FFPError, match="nearest-neighbour"):
        pixel_auroc([np.zeros((4, 4))], [np.zeros((4, 5))])
    with pytest.raises(FFPError, match="count"):
        pixel_auroc([np.zeros((4, 4))] * 2, [np.eye(4)])
    with pytest.raises(FFPError, match="both"):
        pixel_auroc([np.zeros((4, 4))], [np.zeros((4, 4))])


def test_pixel_auroc_accumulator_batches_match_the_iterable_version():
    # eval.py adds whole batches as they are predicted; the result must not depend on how frames are grouped.
    rng = np.random.default_rng(1)
    masks = rng.random((6, 8, 8)) > 0.8
    errs = rng.random((6, 8, 8)) + 0.3 * masks
    acc = PixelAUROC(max_pixels=10_000, seed=0)
    acc.add(errs[:4], masks[:4])
    acc.add(errs[4:], masks[4:])
    assert acc.result() == pytest.approx(pixel_auroc(list(errs), list(masks)))
    assert (acc.n_frames, acc.n_pixels, acc.n_sampled) == (6, 384, 384)


def test_pixel_auroc_accumulator_memory_is_bounded():
    acc = PixelAUROC(max_pixels=1_000, seed=0)
    rng = np.random.default_rng(2)
    for _ in range(50):  # 50 × 4096 pixels offered, at most 2k kept between trims
        mask = rng.random((64, 64)) > 0.9
        acc.add(rng.random((64, 64)) + mask, mask)
        assert len(acc._sampler.keys) <= 2 * 1_000 + 64 * 64
    assert acc.n_sampled == 1_000 and 0.9 < acc.result() <= 1.0


# ----------------------------------------------------------------------------- console table


def test_table_lines_carry_protocol_knobs():
    m = compute_metrics({"v": FIVE_PSNR}, {"v": FIVE_LABELS}, smooth_sigma=1.5)
    table = format_metrics_table({**m, "pixel_auroc": 0.7}, KNOBS)
    auc_lines = [line for line in table.splitlines() if "AU" in line or "EER" in line or " AP " in line]
    assert len(auc_lines) == 6  # micro, macro, EER, AP, raw-PSNR, pixel
    for line in auc_lines:
        assert "ckpt=ped2_latest.pth" in line and "dropped=4" in line and "selected_with_test_labels=no" in line
    for line in auc_lines[:5]:
        assert "sigma=1.5" in line
    macro = next(line for line in auc_lines if "macro" in line)
    assert "pad trick" in macro and "per-video min-max" in macro
    micro = next(line for line in auc_lines if line.split()[:2] == ["micro", "AUC"])
    assert f"{m['micro_auc']:.4f}" in micro


def test_inverted_labels_note_only_below_one_half():
    """Labels stored as 1 = normal turn a detector's AUC into 1 - AUC: computed here on scores that rank the abnormal
    frames first, the official labels give 1.0, the inverted ones 0.0, and only the latter gets the note."""
    labels = np.array([0, 0, 0, 1, 1, 0, 0])
    psnr = {"v": np.where(labels == 1, 20.0, 30.0) + np.arange(7) * 0.1}
    official = compute_metrics(psnr, {"v": labels})["micro_auc"]
    inverted = compute_metrics(psnr, {"v": 1 - labels})["micro_auc"]
    assert official == pytest.approx(1 - inverted) and official > 0.5
    assert inverted_labels_note(official, "frame-level micro-AUC", "gt.mat") is None
    assert inverted_labels_note(None, "frame-level micro-AUC", "gt.mat") is None
    note = inverted_labels_note(inverted, "frame-level micro-AUC", "gt.mat")
    assert note.startswith(f"frame-level micro-AUC {inverted:.4f} is below 0.5") and "(gt.mat) may be inverted" in note
