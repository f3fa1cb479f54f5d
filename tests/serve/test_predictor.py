"""Loading: only safetensors + JSON, sha256 checked, self-tested; predictions vs an oracle."""

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ablate.card import ExportedModel, ModelError
from ablate.data import load_npz
from tests.data_fixtures import SUBSET, subset_expected
from tests.serve import oracle


def test_predictions_match_a_float64_oracle(model_path: Path) -> None:
    mnist = load_npz(SUBSET, subset_expected())
    x = (mnist.x_test[:64].reshape(64, 784) / 255.0).astype(np.float32)
    got = ExportedModel.load(model_path).predict(x)
    want = oracle.forward(model_path, x)
    # float32 vs float64 through 784->512->128->64->10: logit errors ~1e-6 relative,
    # so probabilities agree to ~1e-6; 2e-5 leaves room, and a wrong layer order, BN
    # formula or transposed kernel is off by >1e-2.
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert got.dtype == np.float32 and got.shape == (64, 10)
    # The model learned something: the subset's test digits, better than chance.
    assert (got.argmax(1) == mnist.y_test[:64]).mean() > 0.6


def test_rows_do_not_depend_on_the_batch(model_path: Path) -> None:
    """Micro-batching must not change a request's answer beyond float rounding."""
    p = ExportedModel.load(model_path)
    x = np.random.default_rng(0).random((16, 784), dtype=np.float32)
    alone = np.concatenate([p.predict(x[i:i + 1]) for i in range(16)])
    np.testing.assert_allclose(p.predict(x), alone, atol=1e-6)  # BLAS blocking only


def _card(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def _write_card(path: Path, card: dict) -> None:
    path.with_suffix(".json").write_text(json.dumps(card))


def _resign(path: Path, card: dict) -> None:
    """Write `card` beside `path`, vouching for the weights now in it."""
    card["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    card["version"] = card["weights_sha256"][:12]
    _write_card(path, card)


def test_missing_files(model_copy: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        ExportedModel.load(model_copy.with_name("nope.safetensors"))
    model_copy.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="no such file"):
        ExportedModel.load(model_copy)


def test_a_changed_byte_is_caught_by_the_sha256(model_copy: Path) -> None:
    data = bytearray(model_copy.read_bytes())
    data[len(data) // 2] ^= 0x40
    model_copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        ExportedModel.load(model_copy)


def test_truncated_weights_with_a_matching_sha_are_not_readable(model_copy: Path) -> None:
    data = model_copy.read_bytes()[:1000]
    model_copy.write_bytes(data)
    card = _card(model_copy)
    _resign(model_copy, card)
    with pytest.raises(ModelError, match="safetensors"):
        ExportedModel.load(model_copy)


def test_retrained_weights_with_a_forged_sha_fail_the_self_test(model_path: Path,
                                                                model_copy: Path) -> None:
    """Someone swaps the weights and updates the sha256: the probes catch it."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(model_copy))
    tensors["dense0.weight"] = tensors["dense0.weight"] * np.float32(1.5)
    save_file(tensors, str(model_copy))
    card = _card(model_copy)
    _resign(model_copy, card)
    with pytest.raises(ModelError, match="self-test failed"):
        ExportedModel.load(model_copy)


@pytest.mark.parametrize("edit, words", [
    (lambda c: c.pop("self_test"), "not a valid model card"),
    (lambda c: c.update(format="other/9"), "format"),
    (lambda c: c.update(version="0" * 12), "version"),
    (lambda c: c["architecture"]["config"]["layers"].pop(), "do not fit"),
    (lambda c: c["architecture"]["config"].update(bn_eps=0.5), "self-test failed"),
    (lambda c: c["self_test"]["probabilities"][0].reverse(), "self-test failed"),
    (lambda c: c["self_test"].update(inputs=["!!"]), "self-test is malformed"),
    (lambda c: c.update(surprise=1), "not a valid model card"),
])
def test_a_tampered_card_is_refused(model_copy: Path, edit, words: str) -> None:
    card = _card(model_copy)
    edit(card)
    _write_card(model_copy, card)
    with pytest.raises(ModelError, match=words):
        ExportedModel.load(model_copy)


def test_a_corrupt_card_is_refused(model_copy: Path) -> None:
    model_copy.with_suffix(".json").write_bytes(b"\x00{not json")
    with pytest.raises(ModelError, match="not a valid model card"):
        ExportedModel.load(model_copy)


def test_a_pickle_is_never_unpickled(model_path: Path, tmp_path: Path) -> None:
    """A pickle posing as the weights, with a card that vouches for it: loading must
    fail without running it."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (marker.write_text, ("ran",))

    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(Exploit()))
    card = _card(model_path)
    _resign(path, card)
    with pytest.raises(ModelError, match="safetensors"):
        ExportedModel.load(path)
    assert not marker.exists()


def test_serve_refuses_a_tampered_model_with_one_line(model_copy: Path) -> None:
    data = bytearray(model_copy.read_bytes())
    data[-3] ^= 1
    model_copy.write_bytes(bytes(data))
    from tests.serve.conftest import free_port

    out = subprocess.run([sys.executable, "-m", "ablate.cli", "serve", str(model_copy),
                          "--port", str(free_port())], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    assert "sha256" in out.stderr and "Traceback" not in out.stderr


def test_serve_refuses_a_port_in_use_with_one_line(model_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "ablate.cli", "serve", str(model_path),
                              "--port", str(port)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "Traceback" not in out.stderr


def sequential_names(config: dict) -> dict[str, str]:
    """Role name -> the format-1 name: the index of the module in the old
    `nn.Sequential` (Dense, [BN], activation, [BN], [Dropout] per hidden layer, then the
    output Dense), written out here independently of `ablate.card`."""
    names, k = {}, 0
    for i, layer in enumerate(config["layers"]):
        names[f"dense{i}"] = f"blocks.{k}"
        k += 1
        if layer["batch_norm"] == "before":
            names[f"bn{i}"], k = f"blocks.{k}", k + 1
        k += 1  # activation
        if layer["batch_norm"] == "after":
            names[f"bn{i}"], k = f"blocks.{k}", k + 1
        if layer["dropout"] > 0:
            k += 1
    names[f"dense{len(config['layers'])}"] = f"blocks.{k}"
    return names


def as_format_1(model_path: Path, to: Path) -> Path:
    """The export at `model_path` rewritten the way the previous version wrote it."""
    from safetensors.numpy import load_file, save_file

    card = _card(model_path)
    names = sequential_names(card["architecture"]["config"])
    tensors = load_file(str(model_path))
    old = {}
    for name, t in tensors.items():
        module, part = name.rsplit(".", 1)
        old[f"{names[module]}.{part}"] = t
    assert "blocks.2.running_var" in old  # bn0 follows dense0 and the activation
    save_file(old, str(to))
    card["format"] = "ablate-mnist-mlp/1"
    _resign(to, card)
    return to


def test_a_format_1_export_still_loads(model_path: Path, tmp_path: Path) -> None:
    old = as_format_1(model_path, tmp_path / "old.safetensors")
    assert "blocks.0.weight" in load_tensor_names(old)
    x = np.random.default_rng(3).random((8, 784), dtype=np.float32)
    got = ExportedModel.load(old).predict(x)
    np.testing.assert_array_equal(got, ExportedModel.load(model_path).predict(x))  # same weights
    np.testing.assert_allclose(got, oracle.forward(model_path, x), atol=2e-5)


def load_tensor_names(path: Path) -> set[str]:
    from safetensors.numpy import load_file
    return set(load_file(str(path)))


def test_tensor_names_must_match_the_card_format(model_path: Path, tmp_path: Path) -> None:
    old = as_format_1(model_path, tmp_path / "old.safetensors")
    card = _card(old)
    card["format"] = "ablate-mnist-mlp/2"  # a current card over old names
    _write_card(old, card)
    with pytest.raises(ModelError, match="tensor names do not match card format"):
        ExportedModel.load(old)
