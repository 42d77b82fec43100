"""DeepFlashNet, the paper's loss (eq. 5), accuracy (eq. 7), SSIM / PSNR and encoder-weight loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training import DeepFlashNet, TrainingError, accuracy, deepflash_loss, load_encoder_weights, psnr, ssim
from training._model import VGG16_CONV_INDICES

THIN = 1 / 8


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("shape", [(1, 32, 32), (2, 64, 96), (1, 160, 64)])
def test_output_shape_and_range(shape):
    torch.manual_seed(0)
    n, h, w = shape
    with torch.no_grad():
        y = DeepFlashNet(width=THIN).eval()(torch.rand(n, 3, h, w))
    assert y.shape == (n, 3, h, w)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


@pytest.mark.parametrize("size", [(48, 64), (64, 40), (31, 31)])
def test_sides_must_be_multiples_of_32(size):
    with pytest.raises(ValueError, match="multiples of 32"):
        DeepFlashNet(width=THIN)(torch.rand(1, 3, *size))


def test_encoder_is_vgg16_with_torchvision_names():
    net = DeepFlashNet()
    convs = [k for k in net.state_dict() if k.startswith("features.") and k.endswith(".weight")]
    assert convs == [f"features.{i}.weight" for i in VGG16_CONV_INDICES]
    assert net.features[28].weight.shape == (512, 512, 3, 3)
    assert len(net.decoder) == 5  # one up-stage per pooling
    assert isinstance(net.decoder[0].act, torch.nn.LeakyReLU) and net.decoder[0].act.negative_slope == 0.2


def test_loads_a_torchvision_keyed_state_dict_file(tmp_path):
    donor = DeepFlashNet(width=THIN)
    # A file shaped like torchvision's vgg16().state_dict(): features.N.* plus classifier keys to ignore.
    state = {k: torch.randn_like(v) for k, v in donor.features.state_dict().items()}
    state = {f"features.{k}": v for k, v in state.items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = DeepFlashNet(width=THIN)
    loaded = load_encoder_weights(net, path)
    assert len(loaded) == 26
    for key in loaded:
        assert torch.equal(net.state_dict()[key], state[key])
    with pytest.raises(TrainingError, match="width 1"):
        load_encoder_weights(DeepFlashNet(width=THIN / 2), path)
    (tmp_path / "bad.pth").write_bytes(b"not a state dict")
    with pytest.raises(TrainingError, match=r"bad\.pth"):
        load_encoder_weights(net, tmp_path / "bad.pth")


def test_vggface_normalization_subtracts_the_mean_on_0_255():
    net = DeepFlashNet(width=THIN, normalization="vggface")
    x = torch.full((1, 3, 1, 1), 0.5)
    expected = torch.tensor([127.5 - 129.186, 127.5 - 104.762, 127.5 - 93.594]).view(1, 3, 1, 1)
    assert torch.allclose(x * net._in_scale + net._in_shift, expected, atol=1e-4)


def _numpy_loss(y: np.ndarray, t: np.ndarray) -> float:
    """Eq. 5 written out for one image at a time: 4/(3N) sum((t - y) + E[y - t])^2, then the batch mean."""
    losses = []
    for yi, ti in zip(y, t, strict=True):
        c, h, w = yi.shape
        total = 0.0
        for ch in range(c):
            e = np.mean(yi[ch] - ti[ch])
            total += np.sum(((ti[ch] - yi[ch]) + e) ** 2)
        losses.append(4.0 / (3 * h * w) * total)
    return float(np.mean(losses))


def test_loss_matches_numpy_and_ignores_per_channel_offsets():
    rng = np.random.default_rng(0)
    y = rng.random((3, 3, 16, 24))
    t = rng.random((3, 3, 16, 24))
    loss = deepflash_loss(torch.from_numpy(y), torch.from_numpy(t))
    assert float(loss) == pytest.approx(_numpy_loss(y, t), rel=1e-6)
    offsets = rng.normal(size=(3, 3, 1, 1))
    shifted = deepflash_loss(torch.from_numpy(y + offsets), torch.from_numpy(t))
    assert float(shifted) == pytest.approx(float(loss), rel=1e-6)
    # A per-image offset that is not constant per channel is not ignored.
    ramp = np.linspace(0, 1, 24)[None, None, None, :]
    assert float(deepflash_loss(torch.from_numpy(y + ramp), torch.from_numpy(t))) > float(loss) * 1.05


def test_masked_loss_uses_only_valid_pixels():
    rng = np.random.default_rng(1)
    y = rng.random((2, 3, 8, 8))
    t = rng.random((2, 3, 8, 8))
    valid = np.zeros((2, 8, 8), dtype=np.uint8)
    valid[:, 2:6, 1:7] = 1
    masked = deepflash_loss(torch.from_numpy(y), torch.from_numpy(t), torch.from_numpy(valid))
    expected = _numpy_loss(y[:, :, 2:6, 1:7], t[:, :, 2:6, 1:7])
    assert float(masked) == pytest.approx(expected, rel=1e-6)
    # Garbage outside the mask changes nothing.
    y2 = y.copy()
    y2[:, :, 0, :] = 100.0
    again = deepflash_loss(torch.from_numpy(y2), torch.from_numpy(t), torch.from_numpy(valid))
    assert float(again) == pytest.approx(float(masked), rel=1e-9)


def test_accuracy_matches_numpy():
    rng = np.random.default_rng(2)
    y, t, bl = (rng.random((2, 3, 8, 8)) for _ in range(3))
    acc = accuracy(torch.from_numpy(y), torch.from_numpy(t), torch.from_numpy(bl))
    t_d = bl - 2 * t + 1
    y_d = bl - 2 * y + 1
    expected = 100 - 100 / (3 * 8 * 8) * np.abs(t_d - y_d).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(acc.numpy(), expected, rtol=1e-6)
    assert float(accuracy(torch.from_numpy(t), torch.from_numpy(t), torch.from_numpy(bl))[0]) == 100.0


def test_ssim_and_psnr_match_skimage(astronaut):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = astronaut[100:164, 180:260].astype(np.float64) / 255
    b = np.clip(a + np.random.default_rng(3).normal(0, 0.05, a.shape), 0, 1)
    ta = torch.from_numpy(a).permute(2, 0, 1)[None]
    tb = torch.from_numpy(b).permute(2, 0, 1)[None]
    expected = structural_similarity(a, b, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert float(ssim(ta, tb)[0]) == pytest.approx(expected, abs=1e-4)
    assert float(psnr(ta, tb)[0]) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-3)
    assert float(ssim(ta, ta)[0]) == pytest.approx(1.0, abs=1e-6)


def test_thin_model_overfits_one_batch():
    torch.manual_seed(0)
    net = DeepFlashNet(width=THIN)
    x = torch.rand(2, 3, 32, 32)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    t = (0.5 + 0.3 * torch.stack([xx, yy, xx * yy])).expand(2, 3, 32, 32).contiguous()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = deepflash_loss(net(x), t)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10, (first, loss.item())


def test_offset_weight_interpolates_to_plain_mse():
    rng = np.random.default_rng(4)
    y, t = (torch.from_numpy(rng.random((2, 3, 8, 8))) for _ in range(2))
    plain = 4 * ((t - y) ** 2).mean()
    assert float(deepflash_loss(y, t, offset_weight=1.0)) == pytest.approx(float(plain), rel=1e-6)
    half = deepflash_loss(y, t, offset_weight=0.5)
    assert float(deepflash_loss(y, t)) < float(half) < float(plain)
    valid = torch.ones(2, 8, 8)
    assert float(deepflash_loss(y, t, valid, offset_weight=1.0)) == pytest.approx(float(plain), rel=1e-6)


def test_head_stays_float32_under_bf16_autocast():
    # The GPU path trains under bf16 autocast; the same autocast on CPU exercises the model's side of it.
    net = DeepFlashNet(width=THIN).eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
    assert y.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(y, net(x), atol=0.05, rtol=0)


def test_identity_head_starts_at_the_flash_image():
    """head_init='identity': y = 1/2 everywhere, so pred = x - 2y + 1 is the flash image itself."""
    net = DeepFlashNet(width=1 / 16, head_init="identity").eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        y = net(x)
    torch.testing.assert_close(y, torch.full_like(y, 0.5))
    torch.testing.assert_close(x - 2 * y + 1, x)
    with pytest.raises(ValueError, match="head_init"):
        DeepFlashNet(width=1 / 16, head_init="zeros")


def test_resize_upsampling_has_the_same_channel_plan_and_old_checkpoints_load_as_deconv(tmp_path):
    from training import load_model, save_model_checkpoint

    deconv, resize = DeepFlashNet(width=THIN), DeepFlashNet(width=THIN, upsample="resize")
    assert isinstance(deconv.decoder[0].up, torch.nn.ConvTranspose2d)
    assert deconv.decoder[0].up.weight.shape[2:] == (4, 4) and deconv.decoder[0].up.stride == (2, 2)
    for a, b in zip(deconv.decoder, resize.decoder, strict=True):
        conv = b.up[1]
        assert conv.kernel_size == (3, 3)
        assert (conv.in_channels, conv.out_channels) == (a.up.in_channels, a.up.out_channels)
    x = torch.rand(1, 3, 64, 64)
    assert resize.eval()(x).shape == x.shape
    with pytest.raises(ValueError, match="upsample"):
        DeepFlashNet(width=THIN, upsample="nearest")
    # A checkpoint written before the option existed (no "upsample" in model_config) loads as the paper's deconv.
    save_model_checkpoint(tmp_path / "old.pt", deconv, size=64)
    ckpt = torch.load(tmp_path / "old.pt", weights_only=True)
    del ckpt["model_config"]["upsample"]
    torch.save(ckpt, tmp_path / "old.pt")
    model, _ = load_model(tmp_path / "old.pt")
    assert model.upsample == "deconv"
    save_model_checkpoint(tmp_path / "resize.pt", resize, size=64)
    model, _ = load_model(tmp_path / "resize.pt")
    assert model.upsample == "resize"
    torch.testing.assert_close(model(x), resize(x))


def test_checkerboard_energy_finds_a_grid_and_not_a_photo(astronaut):
    import cv2

    from training import checkerboard_energy

    photo = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA) / 255.0
    assert abs(checkerboard_energy(photo)) < 3
    rng = np.random.default_rng(0)
    for period in (2, 4, 8):
        # What a transposed convolution adds: each phase of the period its own offset (2 % of the range).
        tile = rng.normal(0, 0.02, (period, period, 1))
        grid = photo + np.tile(tile, (256 // period, 256 // period, 1))
        assert checkerboard_energy(grid, periods=(period,)) > 10, period
        assert checkerboard_energy(grid) > 10, period
    with pytest.raises(ValueError, match="divide"):
        checkerboard_energy(photo[:250, :250], periods=(4,))
    with pytest.raises(ValueError, match="too small"):
        checkerboard_energy(photo[:8, :8])


def _astronaut_batch(astronaut: np.ndarray, seed: int, count: int, size: int = 128) -> torch.Tensor:
    import cv2

    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        side = int(rng.integers(200, 400))
        y, x = (int(v) for v in rng.integers(0, 512 - side, 2))
        crops.append(cv2.resize(astronaut[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("upsample", ["deconv", "resize"])
def test_resize_decoder_prints_no_checkerboard(astronaut, upsample):
    """The paper's transposed convolutions print a grid at their stride periods; resize + conv does not.

    Measured on the output y for a held-out photo crop (128 px: periods 2-16), untrained and after 30 Adam steps
    towards a smooth relighting target.
    """
    from training import checkerboard_energy

    torch.manual_seed(0)
    net = DeepFlashNet(width=THIN, upsample=upsample)
    held_out = _astronaut_batch(astronaut, 5, 1)

    def energy() -> float:
        net.eval()
        with torch.no_grad():
            y = net(held_out)[0].permute(1, 2, 0).numpy()
        net.train()
        return checkerboard_energy(y)

    untrained = energy()
    inputs = _astronaut_batch(astronaut, 0, 8)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 128), torch.linspace(-1, 1, 128), indexing="ij")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(30):
        x = inputs[2 * step % 8:2 * step % 8 + 2]
        target = (0.5 + 0.2 * x.mean(1, keepdim=True) * torch.stack([xx, yy, xx * yy])).clamp(0, 1)
        loss = deepflash_loss(net(x), target, offset_weight=0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = energy()
    if upsample == "deconv":
        assert untrained > 8 and trained > 8, (untrained, trained)
    else:
        assert untrained < 3 and trained < 3, (untrained, trained)
