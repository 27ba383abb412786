"""hypersst."""
