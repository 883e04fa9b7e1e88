"""Load generators that drive apps in the VM from the host (UDP, memcache)."""
