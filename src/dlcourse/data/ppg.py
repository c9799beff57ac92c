"""Photoplethysmography (PPG): a synthetic generator and a reference beat detector.

Why both: the real PPG recordings that ship inside heartpy are about 14
minutes long, too little to train a recurrent network, and their beats are not
annotated. The detector annotates the real recordings (and is cross-checked
against heartpy's own detector in the tests); the generator adds many
"subjects" whose beat times are known exactly, with the variation real PPG
has: heart rate and its variability (respiratory sinus arrhythmia, slow
Mayer waves), ectopic beats, pulse shape (systolic and reflected wave,
dicrotic notch), respiratory amplitude modulation, baseline wander, sensor
noise, motion artefacts and a 10-bit ADC with per-device offset and gain.
"""

from __future__ import annotations

import math

import numpy as np

ADC_MAX = 1023


def detect_beats(x: np.ndarray, fs: float) -> np.ndarray:
    """Systolic peak indices of a PPG signal (band-pass, adaptive prominence, refine on raw)."""
    from scipy import signal as sps

    sos = sps.butter(2, [0.5, 5.0], btype="bandpass", fs=fs, output="sos")
    filtered = sps.sosfiltfilt(sos, np.asarray(x, dtype=np.float64))
    candidates, props = sps.find_peaks(filtered, distance=max(int(0.27 * fs), 1), prominence=1e-6)
    if candidates.size == 0:
        return candidates
    prominence = props["prominences"]
    # Keep peaks at least half as prominent as the strong beats around them
    # (90th percentile of the neighbourhood): this drops the diastolic
    # (reflected-wave) bumps and small artefacts.
    half = 5
    padded = np.pad(prominence, half, mode="edge")
    local = np.array([np.percentile(padded[i : i + 2 * half + 1], 90) for i in range(prominence.size)])
    kept = candidates[prominence >= 0.5 * local]
    kept = _enforce_distance(kept, filtered, int(0.33 * fs))
    # Refine to the systolic maximum of the raw signal (+-80 ms).
    reach = max(round(0.08 * fs), 1)
    refined = []
    for p in kept:
        lo, hi = max(p - reach, 0), min(p + reach + 1, len(x))
        refined.append(lo + int(np.argmax(x[lo:hi])))
    return np.unique(np.asarray(refined, dtype=np.int64))


def _enforce_distance(peaks: np.ndarray, values: np.ndarray, distance: int) -> np.ndarray:
    """Of two peaks closer than ``distance``, keep the higher one."""
    out: list[int] = []
    for p in peaks:
        if out and p - out[-1] < distance:
            if values[p] > values[out[-1]]:
                out[-1] = int(p)
        else:
            out.append(int(p))
    return np.asarray(out, dtype=np.int64)


def reliable_mask(x: np.ndarray, fs: float, peaks: np.ndarray, low: float = 5.0, high: float = 970.0) -> np.ndarray:
    """Samples whose beat annotation can be trusted.

    Excludes clipped or dropped-out samples (ADC at its rails) and stretches
    where consecutive inter-beat intervals disagree by more than 30%, the mark
    of a missed or spurious beat, each with a one-second margin.
    """
    x = np.asarray(x)
    bad = (x <= low) | (x >= high)
    if peaks.size >= 3:
        ibi = np.diff(peaks).astype(np.float64)
        ratio = ibi[1:] / ibi[:-1]
        for k in np.flatnonzero((ratio < 1 / 1.3) | (ratio > 1.3)):
            bad[peaks[k] : peaks[k + 2] + 1] = True
        bad[: peaks[0]] = True
        bad[peaks[-1] + 1 :] = True
    else:
        bad[:] = True
    margin = round(fs)
    return ~np.convolve(bad, np.ones(2 * margin + 1, dtype=bool), mode="same").astype(bool)


def _pulse(tau: np.ndarray, shape: dict[str, float]) -> np.ndarray:
    """One pulse: asymmetric systolic wave plus a reflected (diastolic) wave."""
    t1, rise, fall = shape["t1"], shape["rise"], shape["fall"]
    width = np.where(tau < t1, rise, fall)
    systolic = np.exp(-0.5 * ((tau - t1) / width) ** 2)
    diastolic = shape["a2"] * np.exp(-0.5 * ((tau - shape["t2"]) / shape["w2"]) ** 2)
    return systolic + diastolic


def synthesize_ppg(rng: np.random.Generator, seconds: float, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic subject: raw ADC counts at ``fs`` (float64) and systolic peak indices."""
    from scipy import signal as sps

    up = 5  # simulate 5x finer, then low-pass and decimate like a sensor front end
    fine_fs = fs * up
    n_fine = round(seconds * fine_fs)
    t = np.arange(n_fine) / fine_fs

    # Rhythm: mean rate, respiratory sinus arrhythmia, Mayer waves, random walk.
    hr = rng.uniform(50.0, 115.0)
    rr0 = 60.0 / hr
    resp_f = rng.uniform(0.15, 0.4)
    resp_phase = rng.uniform(0, 2 * np.pi)
    rsa = rng.uniform(0.0, 0.08)
    mayer = rng.uniform(0.0, 0.04)
    mayer_phase = rng.uniform(0, 2 * np.pi)
    ectopic_rate = rng.choice([0.0, 0.0, 0.01, 0.03])
    onsets, amps = [], []
    now, drift = -1.5 - rng.uniform(0.0, rr0), 0.0  # earlier beats still decaying at t = 0
    pending_pause = False
    while now < seconds + 1.0:
        drift = 0.97 * drift + rng.normal(0.0, 0.01)
        rr = rr0 * (1 + rsa * math.sin(2 * math.pi * resp_f * now + resp_phase)
                    + mayer * math.sin(2 * math.pi * 0.1 * now + mayer_phase) + drift)
        amp = 1.0
        if pending_pause:
            rr *= rng.uniform(1.2, 1.4)
            pending_pause = False
        elif rng.random() < ectopic_rate:  # premature beat, weak pulse, then a pause
            rr *= rng.uniform(0.6, 0.75)
            amp = rng.uniform(0.3, 0.7)
            pending_pause = True
        now += max(rr, 0.3)
        onsets.append(now)
        amps.append(amp)
    onsets_arr = np.asarray(onsets)

    # Pulse shape of this subject (timing scales with the beat length).
    shape = {
        "t1": rng.uniform(0.12, 0.2), "rise": rng.uniform(0.03, 0.06), "fall": rng.uniform(0.07, 0.15),
        "a2": rng.uniform(0.15, 0.6), "w2": rng.uniform(0.05, 0.11),
    }
    shape["t2"] = shape["t1"] + rng.uniform(0.18, 0.3)
    clean = np.zeros(n_fine)
    peaks_fine = []
    pulse_len = int(1.2 * fine_fs)
    tau_grid = np.arange(pulse_len) / fine_fs
    for onset, amp in zip(onsets_arr, amps, strict=True):
        rr_scale = min(max(math.sqrt(rr0 / 0.85), 0.8), 1.2)
        scaled = dict(shape, t1=shape["t1"] * rr_scale, t2=shape["t2"] * rr_scale)
        wave = amp * _pulse(tau_grid, scaled)
        start = math.ceil(onset * fine_fs)
        lo, hi = max(start, 0), min(start + pulse_len, n_fine)
        if hi <= lo:
            continue
        clean[lo:hi] += wave[lo - start : hi - start]
        peak = start + int(np.argmax(wave))
        if 0 <= peak < n_fine:
            peaks_fine.append(peak)

    # Respiration modulates amplitude and baseline; slow drift; sensor noise; motion.
    resp = np.sin(2 * np.pi * resp_f * t + resp_phase)
    signal = clean * (1.0 + rng.uniform(0.0, 0.2) * resp)
    signal += rng.uniform(0.0, 0.4) * resp
    walk = np.cumsum(rng.normal(0.0, 1.0, n_fine // (up * 10) + 2))
    walk = (walk - walk.mean()) / (walk.std() + 1e-12)
    signal += rng.uniform(0.0, 0.25) * np.interp(t, np.linspace(0, seconds, walk.size), walk)
    for _ in range(rng.poisson(seconds / 60.0 * rng.choice([0.0, 1.0, 3.0]))):
        centre, dur = rng.uniform(0, seconds), rng.uniform(0.8, 4.0)
        envelope = np.clip(1.0 - np.abs(t - centre) / (dur / 2), 0.0, None)
        burst = sps.sosfiltfilt(sps.butter(2, [0.5, 4.0], btype="bandpass", fs=fine_fs, output="sos"),
                                rng.normal(0.0, 1.0, n_fine))
        signal += rng.uniform(0.3, 1.5) * envelope * burst / (burst.std() + 1e-12)
    signal += rng.normal(0.0, rng.uniform(0.005, 0.04), n_fine)

    # Sensor front end: anti-alias low-pass, decimate, 10-bit ADC with offset and gain.
    sos = sps.butter(4, 0.4 * fs, fs=fine_fs, output="sos")
    decimated = sps.sosfiltfilt(sos, signal)[::up]
    gain = rng.uniform(60.0, 350.0)
    offset = rng.uniform(0.6 * gain + 20.0, ADC_MAX - 1.4 * gain - 20.0)  # pulses fit the ADC range
    counts = np.clip(np.rint(offset + gain * decimated), 0, ADC_MAX)
    peaks = np.unique(np.rint(np.asarray(peaks_fine) / up).astype(np.int64))
    return counts, peaks[(peaks >= 0) & (peaks < counts.size)]
