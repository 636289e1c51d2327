"""credd's one AWS plumbing: the client factory (:mod:`credd.aws.clients`) and the one
translator of botocore errors into credd errors (:mod:`credd.aws.errors`).

The AWS files themselves are read once per load by :mod:`credd.awsconfig`; the factory makes its
clients from that parsed config, so nothing re-reads the files between two loads.
"""

from credd.aws.clients import ClientFactory, Limiter, max_inflight

__all__ = ["ClientFactory", "Limiter", "max_inflight"]
