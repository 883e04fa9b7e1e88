from osv.modules import api

# UDP and TCP on 11211, two worker threads. -u root: memcached refuses to run as uid 0
# without -u, and OSv (one address space, no users) reports uid 0 and resolves every name
# to it (libc/user.cc).
default = api.run(cmdline="/usr/bin/memcached -u root -U 11211 -p 11211 -t 2 -m 64")
