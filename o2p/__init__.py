"""o2p: the order-to-payout pipeline's shared core (config, money, time, reference data, registry)."""

__version__ = "0.1.0"
