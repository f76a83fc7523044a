"""Inpainting masked digits with an auto-decoder.

An auto-decoder infers a digit's latent vector from its *observed* pixels
only (NaN marks a hidden pixel, which the loss ignores), then decodes the
whole image: the hidden region is filled in from what the decoder learnt
about digits. An autoencoder cannot do this without having been trained on
that kind of mask.

Run ``python examples/plot_inpainting.py`` (under a minute on 2 CPU cores);
it saves ``examples/inpainting.png``.
"""

import numpy as np
from _mnist import fit_model, load_digits_split

X_train, _, X_test, _ = load_digits_split()
model = fit_model(X_train)

rows = np.arange(28)[:, None]
cols = np.arange(28)[None, :]
masks = {
    "centre square": np.broadcast_to((abs(rows - 13.5) < 7) & (abs(cols - 13.5) < 7), (28, 28)),
    "bottom half": np.broadcast_to(rows >= 14, (28, 28)),
    "70% random": np.random.RandomState(0).rand(28, 28) < 0.7,
}
digits = X_test[:8]
results = {}
for name, mask in masks.items():
    X_masked = np.where(mask.ravel(), np.nan, digits)
    X_filled = model.inverse_transform(model.transform(X_masked))
    rmse = np.sqrt(np.mean((X_filled[:, mask.ravel()] - digits[:, mask.ravel()]) ** 2))
    results[name] = (X_masked, X_filled)
    print(f"{name:>14}: RMSE on the hidden pixels {rmse:.3f}")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1 + 2 * len(masks), len(digits), figsize=(len(digits), 1 + 2 * len(masks)))
shown = [("original", digits)]
for name, (X_masked, X_filled) in results.items():
    shown += [(name, np.where(np.isnan(X_masked), 0.35, X_masked)), ("inpainted", X_filled)]
for r, (label, images) in enumerate(shown):
    for c, image in enumerate(images):
        axes[r, c].imshow(image.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right")
fig.suptitle("Hidden pixels (grey) filled in by ConvAutoDecoder")
fig.savefig(__file__.replace(".py", ".png").replace("plot_", ""), dpi=100, bbox_inches="tight")
