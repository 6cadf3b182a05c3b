#!/usr/bin/env python3
"""Probe the installed nginx (1.22) for every directive it knows: the contexts
it is allowed in, its arity, whether it is a block / a flag, and whether a
repeat in the same block is a "is duplicate" error.  Output is JSON on stdout;
gen_table.py turns it into directives_gen.go.  Run:
    python3 probe_directives.py > directives.json
"""
import json, os, re, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor

NGINX = "/usr/sbin/nginx"
EMERG = re.compile(r"\[emerg\] \d+#\d+: (.*)$")

# {X} is replaced by the probed directive text; it always sits on line 5.
CTX = {
    "main": "\n\n\n\n{X}\nevents{}\n",
    "events": "events {\n\n\n\n{X}\n}\n",
    "http": "events{}\nhttp {\n\n\n{X}\n}\n",
    "server": "events{}\nhttp {\nserver {\n\n{X}\n}}\n",
    "location": "events{}\nhttp {\nserver {\nlocation / {\n{X}\n}}}\n",
    "sif": "events{}\nhttp {\nserver {\nif ($a) {\n{X}\n}}}\n",
    "lif": "events{}\nhttp {\nserver {\nlocation / { if ($a) {\n{X}\n}}}}\n",
    "limit_except": "events{}\nhttp {\nserver {\nlocation / { limit_except GET {\n{X}\n}}}}\n",
    "upstream": "events{}\nhttp {\nupstream u {\n\n{X}\n}}\n",
}


def run(conf):
    d = tempfile.mkdtemp(prefix="ngprobe")
    p = os.path.join(d, "nginx.conf")
    with open(p, "w") as f:
        f.write(conf)
    r = subprocess.run([NGINX, "-t", "-p", d, "-c", p, "-g",
                        "pid %s/nginx.pid; error_log stderr;" % d],
                       capture_output=True, text=True)
    subprocess.run(["rm", "-rf", d])
    for line in r.stderr.splitlines():
        m = EMERG.search(line)
        if m:
            msg = m.group(1)
            lm = re.search(r" in (\S+):(\d+)$", msg)
            ln = int(lm.group(2)) if lm else 0
            return msg.replace(p, "F").replace(d, "D"), ln
    return "", 0


def probe(name):
    res = {}
    msg, _ = run(CTX["http"].replace("{X}", name + ";"))
    if msg.startswith('unknown directive'):
        return name, None
    for ctx, tpl in CTX.items():
        msg, ln = run(tpl.replace("{X}", name + ";"))
        if "directive is not allowed here" in msg and ln == 5:
            continue
        block = msg.startswith('directive "%s" has no opening' % name)
        info = {"block": block, "valid": [], "flag": False, "dup": False}
        for n in range(0, 9):
            args = " ".join(["x"] * n)
            txt = name + (" " + args if args else "") + (" {}" if block else ";")
            m, l = run(tpl.replace("{X}", txt))
            if m.startswith("invalid number of arguments") and l == 5:
                continue
            info["valid"].append(n)
            if n == 1 and m.startswith('invalid value "x" in "%s" directive, it must be "on" or "off"' % name):
                info["flag"] = True
        # duplicate probe: find a value nginx accepts on line 5, repeat it.
        if not block:
            for cand in ["on", "1", "10s", "1k", "/tmp/x", "x", "off", "any",
                         "$a", "4 8k", "1 2", "x y", "$a $b", "x y z", ""]:
                nargs = len(cand.split())
                if nargs not in info["valid"]:
                    continue
                txt = name + (" " + cand if cand else "") + ";"
                m, l = run(tpl.replace("{X}", txt))
                if l == 5 or (m and l == 0 and "directive" in m and name in m):
                    continue
                m2, l2 = run(tpl.replace("{X}", txt + " " + txt))
                info["dup"] = (m2 == '"%s" directive is duplicate in F:5' % name)
                info["dupmsg"] = m2 if l2 == 5 else ""
                info["sample"] = cand
                break
        res[ctx] = info
    return name, res


def main():
    out = subprocess.run(["strings", NGINX], capture_output=True, text=True).stdout
    cands = sorted({w for w in out.split("\n") if re.fullmatch(r"[a-z][a-z0-9_]+", w)})
    if len(sys.argv) > 1:
        cands = sys.argv[1:]
    with ThreadPoolExecutor(max_workers=4) as ex:
        results = dict(r for r in ex.map(probe, cands) if r[1] is not None)
    json.dump(results, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
