#!/usr/bin/env python3
"""The ruler benchmark's rule file: 1,000 dashboard-like recording rules over the
node-exporter-like data of bench/gen_node_exporter.py, in GROUPS groups (default 10 of 100).

Group g covers one shard of the 100 instances (instance=~"host-00<g>.:9100", 10 hosts,
about 1,000 series), as a team's rule file per host pool would; every group holds the same
50 expressions (rate/irate/increase of counters, sum/avg/max by, *_over_time of gauges,
histogram quantiles, ratios) at two windows (5m and 15m).

Usage: rule_bench_rules.py [--groups 10] [--interval 30s] > rules.yml
"""

import argparse

# {s}: the shard's selector; {w}: the window.
EXPRS = [
    'sum by (instance) (rate(node_cpu_seconds_total{{mode!="idle",{s}}}[{w}]))',
    'avg by (instance, mode) (rate(node_cpu_seconds_total{{{s}}}[{w}]))',
    '1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle",{s}}}[{w}]))',
    'sum by (instance) (rate(node_network_receive_bytes_total{{{s}}}[{w}]))',
    'sum by (instance) (rate(node_network_transmit_bytes_total{{{s}}}[{w}]))',
    'sum by (instance, device) (rate(node_disk_read_bytes_total{{{s}}}[{w}]))',
    'sum by (instance, device) (rate(node_disk_written_bytes_total{{{s}}}[{w}]))',
    'rate(node_disk_io_time_seconds_total{{{s}}}[{w}])',
    'rate(node_context_switches_total{{{s}}}[{w}])',
    'rate(node_intr_total{{{s}}}[{w}])',
    'rate(node_vmstat_pgfault{{{s}}}[{w}])',
    'rate(node_vmstat_pgmajfault{{{s}}}[{w}])',
    'histogram_quantile(0.99, sum by (instance, le) (rate(http_request_duration_seconds_bucket{{{s}}}[{w}])))',
    'histogram_quantile(0.5, sum by (instance, le) (rate(http_request_duration_seconds_bucket{{{s}}}[{w}])))',
    'histogram_quantile(0.9, sum by (handler, le) (rate(http_request_duration_seconds_bucket{{{s}}}[{w}])))',
    'sum by (instance) (rate(http_request_duration_seconds_sum{{{s}}}[{w}])) / sum by (instance) (rate(http_request_duration_seconds_count{{{s}}}[{w}]))',
    'sum by (handler) (rate(http_request_duration_seconds_count{{{s}}}[{w}]))',
    'avg_over_time(node_load1{{{s}}}[{w}])',
    'max_over_time(node_load5{{{s}}}[{w}])',
    'max by (instance) (avg_over_time(node_hwmon_temp_celsius{{{s}}}[{w}]))',
    '1 - avg_over_time(node_memory_MemAvailable_bytes{{{s}}}[{w}]) / avg_over_time(node_memory_MemTotal_bytes{{{s}}}[{w}])',
    '1 - min_over_time(node_filesystem_avail_bytes{{{s}}}[{w}]) / max_over_time(node_filesystem_size_bytes{{{s}}}[{w}])',
    'predict_linear(node_filesystem_avail_bytes{{{s}}}[{w}], 4 * 3600)',
    'deriv(node_filesystem_avail_bytes{{{s}}}[{w}])',
    'sum by (instance) (increase(node_network_receive_bytes_total{{{s}}}[{w}]))',
    'irate(node_cpu_seconds_total{{mode="user",{s}}}[{w}])',
    'count by (release) (last_over_time(node_uname_info{{{s}}}[{w}]))',
    'min by (instance) (min_over_time(node_network_up{{{s}}}[{w}]))',
    'max_over_time(node_time_seconds{{{s}}}[{w}]) - on (instance, job) node_boot_time_seconds{{{s}}}',
    'stddev_over_time(node_load1{{{s}}}[{w}])',
    'quantile_over_time(0.9, node_procs_running{{{s}}}[{w}])',
    'topk(3, rate(node_network_receive_bytes_total{{{s}}}[{w}]))',
    'sum(rate(node_cpu_seconds_total{{mode="system",{s}}}[{w}]))',
    'avg by (instance) (rate(node_cpu_seconds_total{{mode="iowait",{s}}}[{w}]))',
    'max by (instance) (rate(node_disk_io_time_seconds_total{{{s}}}[{w}]))',
    'sum by (instance) (rate(node_network_receive_bytes_total{{{s}}}[{w}]) + rate(node_network_transmit_bytes_total{{{s}}}[{w}]))',
    'sum without (cpu) (rate(node_cpu_seconds_total{{{s}}}[{w}]))',
    'count by (instance) (count_over_time(node_cpu_seconds_total{{mode="idle",{s}}}[{w}]))',
    'avg_over_time(node_netstat_Tcp_CurrEstab{{{s}}}[{w}])',
    'max_over_time(node_sockstat_TCP_inuse{{{s}}}[{w}])',
    'avg_over_time(node_filefd_allocated{{{s}}}[{w}])',
    'min_over_time(node_entropy_available_bits{{{s}}}[{w}])',
    'delta(node_hwmon_temp_celsius{{{s}}}[{w}])',
    'changes(node_procs_running{{{s}}}[{w}])',
    'resets(node_disk_io_time_seconds_total{{{s}}}[{w}])',
    'sum by (instance) (rate(node_disk_read_bytes_total{{{s}}}[{w}])) / sum by (instance) (rate(node_disk_written_bytes_total{{{s}}}[{w}]))',
    'rate(http_request_duration_seconds_count{{{s}}}[{w}])',
    'sum by (instance, handler) (rate(http_request_duration_seconds_bucket{{le="0.25",{s}}}[{w}])) / sum by (instance, handler) (rate(http_request_duration_seconds_count{{{s}}}[{w}]))',
    'avg_over_time(node_load15{{{s}}}[{w}])',
    'max by (instance) (max_over_time(node_memory_Cached_bytes{{{s}}}[{w}]) + max_over_time(node_memory_Buffers_bytes{{{s}}}[{w}]))',
]
WINDOWS = ["5m", "15m"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--interval", default="30s")
    a = ap.parse_args()
    if not 1 <= a.groups <= 10:
        raise SystemExit("--groups must be 1..10 (one shard of 10 hosts each)")
    out = ["groups:"]
    for g in range(a.groups):
        sel = f'instance=~"host-00{g}.:9100"'
        out += [f"  - name: shard{g}", f"    interval: {a.interval}", "    rules:"]
        for w in WINDOWS:
            for i, e in enumerate(EXPRS):
                expr = e.format(s=sel, w=w).replace("'", "''")
                out += [f"      - record: bench:e{i:02d}:{w}", f"        expr: '{expr}'",
                        f'        labels: {{shard: "{g}"}}']
    print("\n".join(out))


if __name__ == "__main__":
    main()
