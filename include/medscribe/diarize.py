"""Speaker diarization, offline and torch-free: who said each recognized word.

Voices are told apart by the speaker encoder that the ``resemblyzer`` package ships (a
3-layer LSTM over 40-band mel frames, trained for speaker verification). Only its weight
file is read, and the network runs in numpy, so no deep-learning framework is installed.

The words are cut into stretches of speech at pauses; each stretch gets a voice embedding;
stretches long enough to carry a reliable voice are clustered (average linkage on cosine
similarity, stopping at a similarity threshold or at the requested maximum of speakers), and
the short ones join the speaker whose voice they are closest to.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass, replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .audio import SAMPLE_RATE
from .words import Word

#: The encoder's front end: 25 ms windows every 10 ms, 40 mel bands, power spectrum.
N_FFT = 400
HOP = 160
N_MELS = 40
#: The encoder was trained on 1.6 s partial utterances (160 frames).
PARTIAL_FRAMES = 160
#: A silence this long between words may be a change of speaker.
PAUSE_SECONDS = 0.3
#: Stretches are cut to at most this long, so a turn change without a pause is still seen.
MAX_STRETCH_SECONDS = 3.0
#: Stretches shorter than this are labelled by their nearest speaker, not clustered. Short
#: enough that a speaker who only ever answers in a few words ("My throat hurts.") still
#: forms a cluster; shorter stretches give voice vectors too noisy to cluster.
MIN_CLUSTERED_SECONDS = 0.75
#: How much closer to another speaker a short stretch must be to break a run of speech.
SWITCH_MARGIN = 0.05
#: Frames this far below the loud frames of the file are silence, left out of a voice vector.
SILENCE_BELOW_LOUD = 1e-3
#: The encoder was trained on audio raised to this loudness (RMS, dB full scale).
TARGET_DBFS = -30.0
#: Two clusters whose voices are less alike than this are different speakers. Stretches of
#: one voice score 0.8 to 0.95 against each other, voices of different synthesizers 0.4 to
#: 0.55, two voices of one synthesizer 0.6 to 0.68; a stretch that straddles a turn change
#: falls between, and at 0.75 formed a speaker of its own.
SAME_SPEAKER_SIMILARITY = 0.65


#: The first pickle of a legacy (pre-zip) ``torch.save`` file.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    """A storage of the legacy PyTorch file format, filled after the pickle is read."""

    def __init__(self, dtype: type) -> None:
        self.dtype = dtype
        self.data = np.empty(0, dtype)


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        data = self.storage.data[self.offset :]
        strides = [step * data.itemsize for step in self.stride]
        return np.lib.stride_tricks.as_strided(data, self.shape, strides).astype(np.float32)


class _LegacyUnpickler(pickle.Unpickler):
    """Reads a ``torch.save`` file of the pre-zip format without torch: only tensors and dicts
    are allowed out of the pickle."""

    DTYPES: ClassVar[dict[str, type]] = {
        "FloatStorage": np.float32,
        "DoubleStorage": np.float64,
        "LongStorage": np.int64,
    }

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda storage, offset, shape, stride, *_: _Tensor(
                storage, offset, shape, stride
            )
        if module == "torch" and name in self.DTYPES:
            return self.DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected {module}.{name} in the weight file")

    def persistent_load(self, pid: Any) -> _Storage:
        _, dtype, key, *_ = pid
        return self.storages.setdefault(key, _Storage(dtype))


def load_legacy_torch(path: Path) -> dict[str, Any]:
    """The checkpoint of a pre-zip ``torch.save`` file. Every one of its pickles is read by
    the restricted unpickler: any of them could otherwise run code."""
    with path.open("rb") as file:
        unpickler = _LegacyUnpickler(file)
        if unpickler.load() != LEGACY_MAGIC:
            raise pickle.UnpicklingError(f"{path.name} is not a legacy torch.save file")
        unpickler.load()  # protocol version
        unpickler.load()  # system info
        checkpoint = unpickler.load()
        for key in unpickler.load():
            storage = unpickler.storages[key]
            (count,) = struct.unpack("<q", file.read(8))
            size = count * np.dtype(storage.dtype).itemsize
            storage.data = np.frombuffer(file.read(size), storage.dtype)
    return checkpoint


def weights_path() -> Path:
    """``pretrained.pt`` inside the installed ``resemblyzer`` package (never imported)."""
    return Path(str(metadata.distribution("resemblyzer").locate_file("resemblyzer/pretrained.pt")))


def _mel_filters() -> np.ndarray:
    """Slaney-style mel filterbank (as librosa builds it by default), N_MELS x bins."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        linear = hz / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(hz >= 1000.0, log, linear)

    def to_hz(mel: np.ndarray) -> np.ndarray:
        linear = mel * (200.0 / 3)
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
        return np.where(mel >= 15.0, log, linear)

    bins = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = to_hz(np.linspace(to_mel(np.array(0.0)), to_mel(np.array(SAMPLE_RATE / 2)), N_MELS + 2))
    rising = (bins[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def mel_frames(samples: np.ndarray) -> np.ndarray:
    """Mel power frames (frames x N_MELS), 100 per second, centred like librosa's."""
    padded = np.pad(samples.astype(np.float32), N_FFT // 2)
    count = 1 + (len(padded) - N_FFT) // HOP
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(count)[:, None]
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann
    power = np.abs(np.fft.rfft(padded[index] * window, axis=1)) ** 2
    return (power @ _mel_filters().T).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # the logistic function, without overflow


class VoiceEncoder:
    """The speaker encoder's forward pass in numpy: mel frames -> unit-length voice vectors."""

    def __init__(self, path: Path | None = None) -> None:
        state = load_legacy_torch(path or weights_path())["model_state"]
        tensor = {name: value.array() for name, value in state.items()}
        self.layers = [
            (
                tensor[f"lstm.weight_ih_l{n}"].T,
                tensor[f"lstm.weight_hh_l{n}"].T,
                tensor[f"lstm.bias_ih_l{n}"] + tensor[f"lstm.bias_hh_l{n}"],
            )
            for n in range(3)
        ]
        self.linear = (tensor["linear.weight"].T, tensor["linear.bias"])

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Equal-length mel windows (batch x frames x N_MELS) -> (batch x 256) vectors."""
        sequence = batch
        for w_ih, w_hh, bias in self.layers:
            hidden_size = w_hh.shape[0]
            inputs = sequence @ w_ih + bias  # every time step at once
            h = np.zeros((batch.shape[0], hidden_size), np.float32)
            c = np.zeros_like(h)
            outputs = []
            for step in range(sequence.shape[1]):
                gates = inputs[:, step] + h @ w_hh
                i, f, g, o = np.split(gates, 4, axis=1)
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
                outputs.append(h)
            sequence = np.stack(outputs, axis=1)
        weight, bias = self.linear
        raw = np.maximum(sequence[:, -1] @ weight + bias, 0.0)
        return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-9)

    def embed_stretches(self, stretches: list[np.ndarray]) -> np.ndarray:
        """One voice vector per stretch of frames: the mean of its 1.6 s windows (half
        overlapping). Windows of equal length run as one batch; a stretch shorter than a
        window is cut to a multiple of 0.2 s so that few lengths occur."""
        windows: dict[int, list[np.ndarray]] = {}
        owners: dict[int, list[int]] = {}
        for owner, frames in enumerate(stretches):
            if len(frames) >= PARTIAL_FRAMES:
                step = PARTIAL_FRAMES // 2
                parts = [frames[s : s + PARTIAL_FRAMES] for s in range(0, len(frames) - step, step)]
                parts = [part for part in parts if len(part) == PARTIAL_FRAMES]
            else:
                parts = [frames[: max(20, len(frames) // 20 * 20)]]
            for part in parts:
                windows.setdefault(len(part), []).append(part)
                owners.setdefault(len(part), []).append(owner)
        sums = np.zeros((len(stretches), self.linear[1].shape[0]), np.float32)
        for length, batch in windows.items():
            np.add.at(sums, owners[length], self.embed(np.stack(batch)))
        return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)


@cache
def encoder() -> VoiceEncoder:
    return VoiceEncoder()


def stretches(words: list[Word]) -> list[list[int]]:
    """Word indices grouped into stretches of speech between pauses and sentence ends, each at
    most a few seconds."""
    groups: list[list[int]] = []
    for index, word in enumerate(words):
        if groups:
            first, last = words[groups[-1][0]], words[groups[-1][-1]]
            pause = word.start - last.end
            ended = last.text.endswith((".", "?", "!"))
            if (
                not ended
                and pause < PAUSE_SECONDS
                and word.end - first.start <= MAX_STRETCH_SECONDS
            ):
                groups[-1].append(index)
                continue
        groups.append([index])
    return groups


def cluster(vectors: np.ndarray, max_speakers: int) -> list[int]:
    """Average-linkage clustering on cosine similarity; cluster ids in order of first use."""
    clusters = [[index] for index in range(len(vectors))]
    similarity = vectors @ vectors.T
    while len(clusters) > 1:
        best, pair = -2.0, (0, 1)
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                mean = similarity[np.ix_(clusters[a], clusters[b])].mean()
                if mean > best:
                    best, pair = mean, (a, b)
        if best < SAME_SPEAKER_SIMILARITY and len(clusters) <= max_speakers:
            break
        a, b = pair
        clusters[a] += clusters.pop(b)
    labels = [0] * len(vectors)
    for cluster_id, members in enumerate(sorted(clusters, key=min)):
        for member in members:
            labels[member] = cluster_id
    return labels


def speakers(samples: np.ndarray, words: list[Word], max_speakers: int) -> list[int]:
    """A speaker number (0 = who spoke first) for every word."""
    if not words:
        return []
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) or 1.0
    gain = max(1.0, 10 ** (TARGET_DBFS / 20) / rms)  # raise quiet audio only, as in training
    frames = mel_frames(samples * gain)
    energy = frames.sum(axis=1)
    voiced = energy >= SILENCE_BELOW_LOUD * np.percentile(energy, 95)
    groups = stretches(words)
    spans, lengths = [], []
    for group in groups:
        first = int(words[group[0]].start * 100)
        last = max(int(words[group[-1]].end * 100), first + 20)
        speech = frames[first:last][voiced[first:last]]
        spans.append(speech if len(speech) >= 20 else frames[first:last])
        lengths.append(len(speech) / 100)
    return assign(words, groups, encoder().embed_stretches(spans), lengths, max_speakers)


def assign(
    words: list[Word],
    groups: list[list[int]],
    vectors: np.ndarray,
    lengths: list[float],
    max_speakers: int,
) -> list[int]:
    """Per word, a speaker number from its stretch's voice vector and seconds of speech:
    long stretches are clustered, short ones join the nearest speaker."""
    long_enough = [i for i, length in enumerate(lengths) if length >= MIN_CLUSTERED_SECONDS]
    if not long_enough:
        long_enough = [int(np.argmax(lengths))]
    clustered = dict(zip(long_enough, cluster(vectors[long_enough], max_speakers), strict=True))
    members = [
        [i for i, k in clustered.items() if k == cluster_id]
        for cluster_id in range(max(clustered.values()) + 1)
    ]
    similarity = vectors @ np.stack([vectors[m].mean(axis=0) for m in members]).T
    group_labels: list[int] = []
    for index, group in enumerate(groups):
        if index in clustered:
            group_labels.append(clustered[index])
            continue
        # A short stretch right after another (no pause between) keeps its speaker unless
        # its voice is clearly someone else's.
        best = int(np.argmax(similarity[index]))
        if index and words[group[0]].start - words[groups[index - 1][-1]].end < PAUSE_SECONDS:
            previous = group_labels[-1]
            if similarity[index, best] - similarity[index, previous] < SWITCH_MARGIN:
                best = previous
        group_labels.append(best)
    per_word = [0] * len(words)
    for group, label in zip(groups, group_labels, strict=True):
        for index in group:
            per_word[index] = int(label)
    # Number speakers by first appearance, as a listener would.
    order = list(dict.fromkeys(per_word))
    return [order.index(label) for label in per_word]


def label(samples: np.ndarray, words: list[Word], max_speakers: int) -> list[Word]:
    """The words with their ``spk_N`` speaker labels."""
    return [
        replace(word, speaker=f"spk_{speaker}")
        for word, speaker in zip(words, speakers(samples, words, max_speakers), strict=True)
    ]
