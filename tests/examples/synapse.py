"""Examples for the stateless synapse layers (snntrain/layers/synapse.py)."""
LAYER_EXAMPLES = {
    "linear": ({"in_features": 5, "out_features": 7}, (5,), (7,)),
    "conv2d": ({"in_channels": 2, "out_channels": 4}, (2, 6, 6), (4, 6, 6)),
    "maxpool2d": ({"kernel_size": 2}, (2, 6, 6), (2, 3, 3)),
    "avgpool2d": ({"kernel_size": 2}, (2, 6, 6), (2, 3, 3)),
    "flatten": ({}, (2, 3, 3), (18,)),
}
