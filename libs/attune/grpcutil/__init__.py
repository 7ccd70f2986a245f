"""gRPC plumbing shared by every service: the server bootstrap, channels and rich errors."""
