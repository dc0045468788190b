"""Publishing doctors' free time to aggregators: the slot engine and payload builders."""
