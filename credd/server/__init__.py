"""credd's servers: pure request handlers (:mod:`credd.server.api`) and thin transports."""
