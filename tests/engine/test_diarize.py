"""Diarization's parts alone: the speaker encoder's weight loading, and clustering on
constructed voice vectors whose similarities are set like real ones."""

from __future__ import annotations

import collections
import pickle
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from medscribe import diarize
from medscribe.words import Word

# --- weight loading ---------------------------------------------------------------------


class _StorageRef:
    def __init__(self, key: str, data: np.ndarray) -> None:
        self.key, self.data = key, data


class _TensorRef:
    def __init__(self, storage: _StorageRef, offset: int, shape: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Just enough of torch's names for pickle to write them as torch.save does."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("FloatStorage", "DoubleStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("only written, never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return types.SimpleNamespace(torch=torch, rebuild=_rebuild_tensor_v2)


def write_legacy(path: Path, checkpoint: Any, storages: list[_StorageRef], names: Any) -> None:
    """A pre-zip torch.save file: magic number, version, system info, the pickled checkpoint
    with storages as persistent ids, the storage keys, then each storage's length and bytes."""
    dtype_class = {np.float32: names.torch.FloatStorage, np.float64: names.torch.DoubleStorage}

    class Writer(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, _StorageRef):
                kind = dtype_class[obj.data.dtype.type]
                return ("storage", kind, obj.key, "cpu", obj.data.size)
            return None

        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, _TensorRef):
                args = (obj.storage, obj.offset, obj.shape, obj.stride, False, {})
                return names.rebuild, args
            return NotImplemented

    with path.open("wb") as file:
        for header in (diarize.LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, file, protocol=2)
        Writer(file, protocol=2).dump(checkpoint)
        pickle.dump([s.key for s in storages], file, protocol=2)
        for storage in storages:
            file.write(np.int64(storage.data.size).tobytes() + storage.data.tobytes())


def test_legacy_weights_are_read_with_their_offsets_strides_and_types(tmp_path, fake_torch):
    floats = _StorageRef("0", np.arange(12, dtype=np.float32))
    doubles = _StorageRef("1", np.array([0.5, 1.5], dtype=np.float64))
    state = collections.OrderedDict(
        matrix=_TensorRef(floats, 0, (3, 4), (4, 1)),
        transposed=_TensorRef(floats, 0, (4, 3), (1, 4)),  # a view sharing the storage
        tail=_TensorRef(floats, 8, (4,), (1,)),
        doubles=_TensorRef(doubles, 0, (2,), (1,)),
    )
    path = tmp_path / "weights.pt"
    write_legacy(path, {"model_state": state}, [floats, doubles], fake_torch)
    loaded = {k: v.array() for k, v in diarize.load_legacy_torch(path)["model_state"].items()}
    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(loaded["matrix"], grid)
    np.testing.assert_array_equal(loaded["transposed"], grid.T)
    np.testing.assert_array_equal(loaded["tail"], [8, 9, 10, 11])
    np.testing.assert_array_equal(loaded["doubles"], [0.5, 1.5])
    assert all(array.dtype == np.float32 for array in loaded.values())


class _RunsCode:
    """Unpickles to a call of ``os.system``: what a hostile weight file would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("position", range(5))
def test_no_pickle_of_the_weight_file_may_run_code(tmp_path, position):
    """Each of the file's five pickles is read restricted, the header ones too."""
    marker = tmp_path / "ran"
    pickles: list[Any] = [diarize.LEGACY_MAGIC, 1001, {}, {"model_state": {}}, []]
    pickles[position] = _RunsCode(marker)
    path = tmp_path / "hostile.pt"
    with path.open("wb") as file:
        for obj in pickles:
            pickle.dump(obj, file, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        diarize.load_legacy_torch(path)
    assert not marker.exists()


def _frames(folder: Path, voice: str, pitch: str, text: str) -> np.ndarray:
    raw, wav = folder / f"{voice}-{len(text)}.raw.wav", folder / f"{voice}-{len(text)}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-p", pitch, "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(wav)], check=True)
    return diarize.mel_frames(decode_audio(str(wav)))


def test_shipped_encoder_loads_and_tells_two_voices_apart(tmp_path):
    """The resemblyzer weights, read by the loader, give unit voice vectors in which two
    sentences of one voice are closer than the same sentence in another voice."""
    encoder = diarize.VoiceEncoder()
    assert [w.shape for w in encoder.layers[0]] == [(40, 1024), (256, 1024), (1024,)]
    assert encoder.linear[0].shape == (256, 256)
    clinician = ("en-us+m3", "25")
    patient = ("en-gb+f4", "75")
    first = "I see from your chart that you were here last month."
    second = "No fever, but some nausea in the mornings."
    stretches = [
        _frames(tmp_path, *clinician, first),
        _frames(tmp_path, *clinician, "Let me check your blood pressure today."),
        _frames(tmp_path, *patient, first),
        _frames(tmp_path, *patient, second),
    ]
    vectors = encoder.embed_stretches(stretches)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.1
    assert similarity[2, 3] > similarity[2, 0] + 0.1


# --- clustering on constructed voice vectors ----------------------------------------------

#: Shares of a constructed vector: what all voices have in common, the speaker's own
#: direction, and the stretch's own noise. Stretches of one voice then score 0.85 against
#: each other and 0.5 against other voices, as measured stretches of real voices do.
COMMON, OWN, NOISE = 0.5, 0.35, 0.15


def voice_vectors(speakers: list[int], seed: int = 0) -> np.ndarray:
    """One unit vector per stretch, spoken by the given speaker numbers."""
    count = len(speakers)
    basis, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(256, 1 + 10 + count)))
    common, own, noise = basis[:, 0], basis[:, 1:11], basis[:, 11:]
    vectors = np.stack(
        [
            np.sqrt(COMMON) * common + np.sqrt(OWN) * own[:, s] + np.sqrt(NOISE) * noise[:, i]
            for i, s in enumerate(speakers)
        ]
    )
    return vectors.astype(np.float32)


@pytest.mark.parametrize(
    "speakers",
    [
        [0, 1, 0, 1, 0],
        [0, 1, 2, 0, 2, 1, 0],
        [0, 1, 0, 1, 2, 0],  # the third speaker has one stretch
        [0, 0, 0],
    ],
)
def test_stretches_cluster_by_voice_numbered_by_first_appearance(speakers):
    assert diarize.cluster(voice_vectors(speakers), max_speakers=5) == speakers


def test_at_most_max_speakers_even_when_more_voices_speak():
    labels = diarize.cluster(voice_vectors([0, 1, 2, 0, 1, 2]), max_speakers=2)
    assert len(set(labels)) == 2
    assert labels[0] == labels[3] and labels[1] == labels[4] and labels[2] == labels[5]


def words_of(turns: list[tuple[str, float, float]]) -> list[Word]:
    return [Word(text, start, end, 1.0) for text, start, end in turns]


#: A clinician's two long sentences around one word of the patient's (no pause before it).
VISIT = [
    ("Good", 0.0, 0.4), ("morning,", 0.4, 0.9), ("how", 0.9, 1.2), ("are", 1.2, 1.4),
    ("you?", 1.4, 1.8),
    ("Fine.", 1.9, 2.3),
    ("Let", 3.0, 3.2), ("me", 3.2, 3.4), ("check", 3.4, 3.8), ("your", 3.8, 4.0),
    ("chart.", 4.0, 4.6),
]  # fmt: skip


def test_a_speaker_who_says_one_long_word_is_a_speaker_of_their_own():
    words = words_of(VISIT)
    groups = diarize.stretches(words)
    assert [len(g) for g in groups] == [5, 1, 5]
    lengths = [1.8, diarize.MIN_CLUSTERED_SECONDS, 1.6]
    labels = diarize.assign(words, groups, voice_vectors([0, 1, 0]), lengths, max_speakers=2)
    assert labels == [0] * 5 + [1] + [0] * 5


def test_a_word_too_short_to_cluster_joins_the_voice_it_is_nearest():
    """The short answer is clearly the patient's, who also spoke at length elsewhere; a
    vector that is the clinician's and the patient's alike keeps the previous speaker."""
    words = words_of([*VISIT, ("Thank", 5.5, 5.9), ("you,", 5.9, 6.3), ("doctor.", 6.3, 6.9)])
    groups = diarize.stretches(words)
    lengths = [1.8, 0.3, 1.6, 1.4]
    vectors = voice_vectors([0, 1, 0, 1])
    labels = diarize.assign(words, groups, vectors, lengths, max_speakers=2)
    assert labels == [0] * 5 + [1] + [0] * 5 + [1] * 3
    blended = vectors[0] + vectors[3]
    vectors[1] = blended / np.linalg.norm(blended)
    labels = diarize.assign(words, groups, vectors, lengths, max_speakers=2)
    assert labels == [0] * 5 + [0] + [0] * 5 + [1] * 3
