#!/usr/bin/env python3
"""Records Prometheus 2.42's error texts for malformed PromQL into parse_errors.tsv.

Starts the installed Prometheus 2.42 on loopback with an empty data directory, sends every
query of CORPUS to /api/v1/query_range (whose error has no `invalid parameter "query":`
wrapper) and writes `query<TAB>error` lines. Queries that Prometheus accepts are reported on
stderr and left out. Tabs, newlines and backslashes in both fields are escaped as \\t, \\n, \\\\.

Usage: python3 gen_parse_errors.py [OUT]        (needs prometheus on PATH)
       python3 gen_parse_errors.py --ask QUERY   (prints one answer; for exploring)
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

CORPUS = r"""
# end of input and stray tokens
1+
1 +
foo bar
foo 3
foo "bar"
foo 5m
-
+
*
1 *
1 * * 2
foo and
sum(foo) by
()
(1
((1)
(1))
)
1)
foo)
foo }
foo ]
foo ,
foo,bar
foo[5m]]
1 2
"a" "b"
foo offset
foo offset 5
foo offset -
foo offset bar
foo @
foo @ bar
foo @ start
foo @ start(
foo @ end(1)
@
offset
by
without
bool
on
ignoring
group_left
start
end
start()
atan2
1 atan2
==
=
~
!
!foo
foo ! bar
foo =~ bar
foo ~ bar
foo # comment
# only a comment
foo;
foo $
foo ?
foo & bar
foo | bar
foo \ bar
foo.bar
.
.5.
1..2
0x
0xg
1e
1e+
5mm
5m5
5x
1a
1_000
foo[5]
foo[5m
foo[
foo[]
foo[5m:
foo[5m:1m
foo[5m:1m:1m]
foo[5m:1]
foo[5m 1m]
foo[-5m]
foo[0m]
foo[5m][5m]
foo[5m]:1m]
foo[1y1y]
foo[5hs]
foo[5ms5]
foo[1m1h]
foo[[5m]]
foo[5m] offset
foo[5m] [1m]
foo offset 5m [5m]
foo @ 1 [5m]
sum(foo)[5m]
1[5m]
"a"[5m]
(foo)[5m]
rate(foo[5m])[5m]
rate(foo[5m])[5m:1m][1m]
foo[5m:1m] offset 1m [1m]
foo{
foo{a
foo{a=
foo{a="b"
foo{a="b",
foo{a="b" b="c"}
foo{a="b"c}
foo{a b}
foo{=}
foo{="b"}
foo{a="b"}}
foo{a="b"}{c="d"}
foo{{a="b"}}
foo{a=b}
foo{a=1}
foo{a="b" == }
foo{a~"b"}
foo{a!"b"}
foo{a!}
foo{a=~"("}
foo{a=~"[a"}
foo{a=~"*"}
foo{a!~"a**"}
foo{a=~"(?<name>x)"}
foo{a=~"\\"}
foo{1="b"}
foo{a.b="c"}
foo{,}
foo{a="b",,c="d"}
foo{a="\q"}
foo{a="\x4"}
foo{a="\u12"}
foo{a="\400"}
foo{a="\uD800"}
foo{a="b
{}
{a=""}
{a!="b"}
{a=~".*"}
{a!~"x"}
{a=~".*", b=~".*"}
foo{__name__="bar"}
{__name__="bar", __name__="baz"}
foo{__name__=~"bar"}
{__name__=""}
"abc
'abc
`abc
"ab\"
foo{a="b"} "
"\z"
'\xZZ'
"a\
sum
sum(
sum()
sum(foo
sum(foo,
sum(foo, bar)
sum foo
sum by
sum by (
sum by (a
sum by (a,
sum by (a b)
sum by (a) foo
sum by (1) (foo)
sum by ("a") (foo)
sum by (a) (foo) by (b)
sum(foo) by (a) without (b)
sum without (a) (foo) by (b)
sum(foo) by
sum(foo) by (
sum(foo) by (a
sum(foo) by a
sum(foo) bool
sum(foo[5m])
sum("a")
sum(1)
topk(foo)
topk(1)
topk("a", foo)
topk(foo, foo)
topk(1, foo, bar)
count_values(foo)
count_values(1, foo)
quantile(foo)
quantile(foo, 0.5)
quantile(0.5)
avg(foo) by (sum)
sum by (on) (foo)
stddev()
group(foo, bar)
min(foo[5m:1m])
max by (a) ()
rate(
rate()
rate(foo)
rate(foo[5m], 1)
rate(1)
rate("a")
rate(foo[5m:1m])
rate(rate(foo[5m]))
irate(sum(foo))
abs(foo[5m])
abs()
abs(foo, bar)
abs("a")
foo()
foo(bar)
nonexistent(1)
time(1)
time(foo)
vector(foo)
vector()
scalar(foo[5m])
round(foo, bar)
round(foo, 1, 2)
clamp(foo)
clamp(foo, 1)
clamp_max(foo)
histogram_quantile(foo)
histogram_quantile(0.9, foo[5m])
histogram_quantile(foo, 0.9)
label_replace(foo)
label_replace(foo, "a", "b", "c")
label_replace(foo, a, "b", "c", "d")
label_replace(foo, "a", "b", "c", 1)
label_join(foo)
label_join(foo, "a")
label_join(foo, 1, ",", "a")
days_in_month(foo, bar)
holt_winters(foo[5m], 0.5)
holt_winters(foo, 0.5, 0.5)
predict_linear(foo, 1)
predict_linear(foo[5m])
quantile_over_time(foo[5m], 0.5)
quantile_over_time(0.5)
absent(foo[5m])
absent_over_time(foo)
sort(foo[5m])
rate(foo[5m],)
abs(foo,)
abs(,)
rate(foo[5m]
rate(foo[5m]))
rate foo[5m]
rate[5m]
time
time()()
foo(
1 + foo[5m]
foo[5m] + 1
foo[5m] * foo[5m]
"a" + 1
1 + "a"
"a" + "b"
foo + "a"
-"a"
-foo[5m]
+foo[5m]
-(foo[5m])
1 and 2
1 or foo
foo and 1
foo unless 1
1 == 2
1 > 2
foo + bool bar
foo and bool bar
1 + bool 2
foo + on(a) 1
1 + on(a) foo
1 + ignoring(a) 2
foo + on(a) group_left bar[5m]
foo and on(a) group_left bar
foo or ignoring(a) group_right(b) bar
foo + on(a) group_left(a) bar
foo + on(a) group_right(a) bar
foo + on(a
foo + on a bar
foo + on() () bar
foo + on(a) group_left(
foo + on(a) group_left(b bar
foo + group_left bar
foo + on(a) bar on(b)
foo + bool
foo == bool
foo + on
foo + ignoring
foo on(a) + bar
foo bool + bar
foo + on(1) bar
foo + on("a") bar
foo * on(a) group_left group_right bar
foo offset 5m offset 1m
foo @ 1 @ 2
foo @ 1 offset 1m @ 2
sum(foo) offset 5m
sum(foo) @ 1
1 offset 5m
"a" offset 5m
(foo) offset 5m
rate(foo[5m]) offset 5m
foo offset 5m[1m]
foo offset 1x
foo @ "a"
foo @ -
foo @ foo
foo @ 1e400
foo @ Inf
foo @ NaN
foo @ start() @ end()
foo[5m] @ start
1 @ 1
foo @ 1 offset
foo offset 1m @
foo[1m:1m] @ 1 @ 2
foo[5m:] offset
sum(foo)[5m:1m] offset 1m offset 2m
Inf[5m]
NaN + "a"
foo:bar{
foo:bar baz:qux
:foo
foo::bar bar
foo{a="b"} offset 5 m
count_values("a", foo[5m])
count_values(foo, bar)
sum(foo, 1)
sum by(a) by(b) (foo)
sum without(a) by (b) (foo)
sum without
sum without (
bottomk(1, foo[5m])
topk(1, "a")
quantile("a", foo)
quantile(0.5, foo, 1)
count(foo) by (a) (bar)
sum(foo) foo
sum(foo) (bar)
sum(foo) [5m]
sum(foo)(
foo{a="b"}[5m] offset 1m [1m]
foo{a="b"}[5m:1m:]
foo[5m:1m]]
foo[1h:5m] @
foo{a="a"
}
foo +
bar[5m]
sum by (a,
b
foo{a=\"b\"}
foo{a="b"}; bar
foo{a="b"
,c="d"
1 +
2 +
"ok\n
abc'
foo bar baz
1 1 1
foo @ 1 1
sum(rate(foo[5m]) by (a)
histogram_quantile(0.9, sum(rate(foo[5m])) by (le)
sum(rate(foo[5m])) by (le))
avg_over_time(foo[5m)
avg_over_time(foo[5m]
avg_over_time(foo)[5m]
max_over_time(rate(foo[5m]))
rate(foo{a="b"[5m])
count by (a) (foo) > bool
count(foo) > bool 1 1
foo > bool bar bool
-1 2
--
-- foo
1 - - -
foo * -
foo / (
foo ^ )
foo % ]
1 +-+ foo[5m]
-rate(foo[5m])[1m]
foo{a="b"} == on(a) group_left(b) bar{c="d"}[5m]
vector(1)[5m:1m][1m]
absent(nonexistent{job="x"}[5m])
timestamp(foo[5m])
day_of_week(foo[5m])
changes(foo)
resets(1)
deriv(foo)
delta(foo, 1)
increase()
sort_desc(foo, 1)
exp(foo[5m])
ln("a")
sgn(foo, foo)
label_replace(foo, "dst", "$1", "src")
label_replace(foo, "dst", "$1", "src", "(")
label_join(foo, "dst", ",", 1)
1 start
foo offset start
sum by (a) start
foo @ 1 end
sum(foo,)
sum(,)
foo[5m][5m:1m]
"a"[5m:1m]
foo offset 0s
foo[99999999999y]
foo @ 1e19
sort_by_label(foo)
mad_over_time(foo[5m])
foo * on(a) group_left 1
foo * on(a) group_left +
foo * on(a) group_left )
sum by (a,,) (foo)
foo[5m:1m x]
foo{a="\x4g"}
"\u{12}"
sum(foo bar)
rate(foo bar)
sum(rate(foo bar))
foo + (bar baz)
sum(foo) by (a) (
foo offset 5m offset -1m
foo{a="b"} offset 5m [5m]
foo{a=~"a{2,1}"}
foo{a=~"\\p{Foo}"}
foo{a=~"[b-a]"}
foo{a=~"a{1001}"}
foo{a=~"\\8"}
foo{a=~")"}
foo{a=~"x\\"}
foo{a=~"(?i"}
foo{a=~"[[:foo:]]"}
foo{a=~"a++"}
foo{a=~"(?P<n>"}
foo{a=~"\\Q"}
foo{a=~"?"}
foo{a=~"+"}
foo{a=~"[]"}
sum by (a)
foo * on(a) group_left
sum by (a:b) (foo)
sum(foo) by (a) $
sum(foo, bar) $
foo AND 1
foo AnD on(a) group_left bar
- sum(foo) offset 5m
count_values("a", foo, bar)
foo * on(a) bool bar
Sum(foo, bar)
0x1.5
0xFFFFFFFFFFFFFFFFFFFFF
foo @ -Inf
foo @ 1 @ start()
foo[5m] offset 5m offset 1m
"""


def corpus():
    for line in CORPUS.split("\n"):
        if line and not line.startswith("# "):
            yield line
    # Multi-line queries: positions count lines and columns.
    yield from ["foo{a=\"b\"\n,c=\"d\"", "1 +\n2 +", "sum by (a,\nb", "foo +\n  bar[5m] +\n  ",
                "foo{a=\"a\"\n}}", "rate(\n  foo[5m]\n  , 1\n)", "\"ok\n\"", "foo\n\nbar",
                "sum(\n  foo\n) by (\n  a b\n)", "foo\toffset", "foo\r\nbar", "", "# only a comment",
                "foo # comment\n+", "sum(foo) # c\nbar"]


def esc(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, workdir):
        self.port = free_port()
        cfg = os.path.join(workdir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {scrape_interval: 1h}\n")
        self.log = open(os.path.join(workdir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{self.port}",
             f"--storage.tsdb.path={os.path.join(workdir, 'data')}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)
                return
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("prometheus did not become ready")

    def error_of(self, query):
        """Prometheus' error text for `query`, or None when it evaluates."""
        body = urllib.parse.urlencode({"query": query, "start": "1", "end": "2", "step": "1"})
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/api/v1/query_range", body.encode()) as r:
                doc = json.load(r)
        except urllib.error.HTTPError as e:
            doc = json.load(e)
        if doc["status"] == "success":
            return None
        if doc["errorType"] != "bad_data":
            return f"<{doc['errorType']}> {doc['error']}"
        return doc["error"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def main():
    work = tempfile.mkdtemp(prefix="gen-parse-errors-")
    prom = Prometheus(work)
    try:
        if len(sys.argv) > 2 and sys.argv[1] == "--ask":
            for q in sys.argv[2:]:
                print(f"{q!r}\t{prom.error_of(q)}")
            return
        out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "parse_errors.tsv")
        seen, rows = set(), []
        for q in corpus():
            if q in seen:
                continue
            seen.add(q)
            err = prom.error_of(q)
            if err is None or "parse error: " not in err:
                print(f"not a parse error, left out: {q!r}: {err}", file=sys.stderr)
            else:
                rows.append(f"{esc(q)}\t{esc(err)}\n")
        with open(out, "w") as f:
            f.write("".join(rows))
        print(f"{len(rows)} rows written to {out}", file=sys.stderr)
    finally:
        prom.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
