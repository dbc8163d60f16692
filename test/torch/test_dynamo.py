"""torch.compile(backend="kiln") against eager PyTorch (python/kiln/dynamo.py).

torch, torchvision and transformers are imported unconditionally: CI installs
them (scripts/setup-torch.sh), and a missing one must fail this suite, not
skip it.
"""
import os
import sys
import warnings

import pytest
import torch
import torchvision
import transformers

if not os.environ.get("KILN_TEST_INSTALLED"):  # test/package runs it on an installed kiln
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import kiln.dynamo  # noqa: E402  (registers backend="kiln")
from kiln.dynamo import KilnFallbackWarning  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    torch.manual_seed(0)
    yield
    torch._dynamo.reset()


@pytest.fixture
def compiles(monkeypatch):
    """Counts kiln-compile runs, so a test sees that Kiln, not eager, answered."""
    calls = []
    real = kiln.dynamo.kiln_compile

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(kiln.dynamo, "kiln_compile", counting)
    return calls


@pytest.fixture
def no_fallback():
    with warnings.catch_warnings():
        warnings.simplefilter("error", KilnFallbackWarning)
        yield


def close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL)


def test_resnet18_two_batch_sizes(compiles, no_fallback):
    model = torchvision.models.resnet18(num_classes=10).eval()
    compiled = torch.compile(model, backend="kiln", options={"threads": 2})
    with torch.no_grad():
        for batch in (1, 3, 1):
            x = torch.randn(batch, 3, 64, 64)
            close(compiled(x), model(x))
    assert len(compiles) == 2  # one artifact per batch size; the repeat is cached


def test_bert_encoder(compiles, no_fallback):
    config = transformers.BertConfig(
        vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=64, attn_implementation="eager")
    model = transformers.BertModel(config).eval()
    ids = torch.randint(0, config.vocab_size, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 10:] = 0  # padding: exercises the extended attention mask
    compiled = torch.compile(model, backend="kiln")
    with torch.no_grad():
        got, want = compiled(ids, attention_mask=mask), model(ids, attention_mask=mask)
    close(got.last_hidden_state, want.last_hidden_state)
    close(got.pooler_output, want.pooler_output)
    assert compiles


class RoiPool(torch.nn.Module):
    # torchvision's roi_pool exports to ONNX MaxRoiPool, which Kiln lacks.
    def forward(self, x, boxes):
        return torchvision.ops.roi_pool(x, boxes, output_size=(2, 2)) * 2 + 1


def test_unsupported_op_falls_back_with_one_warning():
    model = RoiPool()
    compiled = torch.compile(model, backend="kiln")
    x = torch.randn(1, 3, 8, 8)
    boxes = torch.tensor([[0, 0, 0, 4, 4], [0, 2, 1, 7, 6]], dtype=torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            first = compiled(x, boxes)
            second = compiled(x, boxes)
    ours = [w for w in caught if issubclass(w.category, KilnFallbackWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert "MaxRoiPool" in message and "unsupported operator" in message, message
    with torch.no_grad():
        want = model(x, boxes)
    close(first, want)
    close(second, want)


def test_unexportable_op_falls_back(capfd):
    # aten::pdist has no ONNX export: the warning names it, and the exporter's
    # graph dumps stay off stdout.
    compiled = torch.compile(torch.nn.functional.pdist, backend="kiln")
    x = torch.rand(4, 3)
    with pytest.warns(KilnFallbackWarning, match="aten::pdist"):
        got = compiled(x)
    close(got, torch.nn.functional.pdist(x))
    assert "graph" not in capfd.readouterr().out


def test_input_mutation_falls_back():
    def bump(x):
        x.add_(1)
        return x * 2
    compiled = torch.compile(bump, backend="kiln")
    a, b = torch.zeros(3), torch.zeros(3)
    with pytest.warns(KilnFallbackWarning, match="in place"):
        got = compiled(a)
    close(got, bump(b))
    close(a, b)  # mutated once, as eagerly


def test_grad_mode_runs_eagerly():
    model = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with pytest.warns(KilnFallbackWarning, match="gradients"):
        y = torch.compile(model, backend="kiln")(x)
    assert y.requires_grad
    y.sum().backward()
    assert model.weight.grad is not None


def test_dynamic_shapes_and_weight_updates(compiles, no_fallback):
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(),
                                torch.nn.LayerNorm(16)).eval()
    compiled = torch.compile(model, backend="kiln", dynamic=True)
    with torch.no_grad():
        for rows in (2, 5, 2):
            x = torch.randn(rows, 8)
            close(compiled(x), model(x))
        assert len(compiles) == 2
        model[0].weight.mul_(2)  # baked weights are stale now: must recompile
        close(compiled(x), model(x))
    assert len(compiles) == 3


def test_unknown_option_is_an_error():
    compiled = torch.compile(torch.nn.ReLU(), backend="kiln", options={"thread": 2})
    with pytest.raises(Exception, match="unknown option"):
        compiled(torch.randn(2))
