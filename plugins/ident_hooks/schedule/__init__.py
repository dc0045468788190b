"""Publishing doctors' free time to aggregators: the slot engine and the publishers."""
