"""Examples for the fused conv+BN layers (snntrain/norm/fold.py)."""
import snntrain.norm.fold  # noqa: F401  (registers conv_bn1d/2d/3d)

# BN in training mode normalizes with the statistics of the batch it sees: a single
# step [B, ...] and the whole sequence [T*B, ...] differ, so steps compare in eval
# mode (running statistics), which is what the ``random`` flag does.
LAYER_EXAMPLES = {
    "conv_bn1d": ({"in_channels": 2, "out_channels": 4}, (2, 7), (4, 7), {"random": True}),
    "conv_bn2d": ({"in_channels": 2, "out_channels": 4}, (2, 6, 6), (4, 6, 6), {"random": True}),
    "conv_bn3d": ({"in_channels": 2, "out_channels": 3, "stride": 2}, (2, 4, 5, 5), (3, 2, 3, 3), {"random": True}),
}
