/* memcached's time inside OSv per request: from the frame OSv's driver took in (net_packet_in,
   netisr protocol 9: the Ethernet frame) to the reply frame it sent out (net_packet_out), paired
   by the client's UDP port and memcached's request id (the first 2 bytes of its UDP frame
   header). Offsets are hex digits into the 128 captured bytes: ethertype at 24, IP protocol at
   46 (0x11: UDP), UDP ports at 68 and 72, the request id at 84 (an IPv4 header of 20 bytes).
   osvtrace query mc.osvt "$(cat tests/support/osv_apps/memcached/in_guest_latency.sql)" */
with f as (select 'in' as dir, time, hex(a1) as h from net_packet_in where a0 = 9
           union all select 'out', time, hex(a1) from net_packet_out where a0 = 9),
u as (select dir, time, ('0x' || substr(h, 69, 4))::integer as sport, ('0x' || substr(h, 73, 4))::integer as dport,
             ('0x' || substr(h, 85, 4))::integer as rid
      from f where substr(h, 25, 4) = '0800' and substr(h, 47, 2) = '11'),
rx as (select time, sport as port, rid from u where dir = 'in' and dport = 11211),
tx as (select time, dport as port, rid from u where dir = 'out' and sport = 11211),
pairs as (select tx.time - rx.time as ns from rx asof join tx on rx.port = tx.port and rx.rid = tx.rid and tx.time >= rx.time)
select count(*) as replies, round(quantile_cont(ns, 0.5) / 1e3) as p50_us, round(quantile_cont(ns, 0.9) / 1e3) as p90_us,
       round(quantile_cont(ns, 0.99) / 1e3) as p99_us, round(max(ns) / 1e3) as max_us from pairs
