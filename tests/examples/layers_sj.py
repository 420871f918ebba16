"""Examples for the layers ported from SpikingJelly's layer package (dropout, filter, misc, containers)."""
LAYER_EXAMPLES = {
    # snntrain/layers/dropout.py: step(x, mask) -> (y, mask); random in training
    "dropout": ({"p": 0.3}, (5,), (5,), {"stateful": True, "random": True}),
    "dropout2d": ({"p": 0.3}, (2, 4, 4), (2, 4, 4), {"stateful": True, "random": True}),
    "dropconnect_linear": (
        {"in_features": 5, "out_features": 7, "p": 0.3},  # activation none: deterministic eval
        (5,),
        (7,),
        {"stateful": True, "random": True},
    ),
    # snntrain/layers/filter.py
    "synapse_filter": ({"tau": 4.0, "learnable": True}, (2, 3), (2, 3), {"stateful": True}),
    # snntrain/layers/misc.py
    "channels_pool": ({"kernel_size": 2}, (4, 3, 3), (2, 3, 3)),
    "dct": ({"kernel_size": 2}, (2, 4, 6), (2, 4, 6)),
    "axat": ({"in_features": 4, "out_features": 3}, (2, 4, 4), (2, 3, 3)),
    "print_shape": ({"label": "example"}, (2, 3), (2, 3)),
    # snntrain/layers/containers.py
    "element_wise_recurrent": (
        {"neuron": {"name": "if", "reset": "subtract"}, "function": "add"},
        (6,),
        (6,),
        {"stateful": True},
    ),
    "linear_recurrent": (
        {"in_features": 5, "neuron": {"name": "lif", "tau": 2.0}, "out_features": 3},
        (5,),
        (3,),
        {"stateful": True},
    ),
}
