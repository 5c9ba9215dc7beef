"""The run's figures as Markdown tables (readable in a terminal, pasted as is into BUILD.md),
and the targets (issues 13 and 24), met or not."""

from __future__ import annotations

#: (name, threshold, "min" or "max"): the targets, each a floor or a ceiling.
TARGETS = (
    ("training >= 1.2x keras.applications fit", 1.2, "min"),
    ("inference >= 1.0x keras.applications predict_on_batch", 1.0, "min"),
    ("inference >= 85% of the matmul bound", 0.85, "min"),
    ("pipeline >= 2x naive at jittered S", 2.0, "min"),
    ("serving latency <= 1.2x the bare forward pass", 1.2, "max"),
    ("default CPU path >= 0.9x the faster oneDNN setting (training)", 0.9, "min"),
)


def _jittered(pipeline: dict) -> dict:
    return next(row for row in pipeline["scales"] if row["scale_min"] != row["scale_max"])


def target_values(results: dict) -> dict[str, float | None]:
    """The figure each target is judged on (the worst batch size for inference); None when
    its section was not run."""
    values: dict[str, float | None] = {name: None for name, _, _ in TARGETS}
    if "training" in results:
        values[TARGETS[0][0]] = results["training"]["ratio"]
    if "inference" in results:
        batches = results["inference"]["batches"]
        values[TARGETS[1][0]] = min(b["ratio"] for b in batches)
        values[TARGETS[2][0]] = min(b["vgg_tf_bound_fraction"] for b in batches)
    if "pipeline" in results:
        values[TARGETS[3][0]] = _jittered(results["pipeline"])["ratio"]
    if "serving" in results:
        values[TARGETS[4][0]] = results["serving"]["ratio"]
    if "onednn" in results:
        values[TARGETS[5][0]] = results["onednn"]["training"]["default_over_faster"]
    return values


def targets(results: dict) -> list[dict]:
    """Each target: name, value, threshold, met (None when not measured)."""
    values = target_values(results)
    rows = []
    for name, threshold, kind in TARGETS:
        value = values[name]
        met = (
            None if value is None else (value >= threshold if kind == "min" else value <= threshold)
        )
        rows.append(dict(name=name, value=value, threshold=threshold, met=met))
    return rows


def _table(header: list[str], rows: list[list]) -> list[str]:
    def cell(v):
        return f"{v:,.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _yes(value) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]


def _on(value) -> str:
    return {True: "on", False: "off", None: "TensorFlow's default"}[value]


def cpu_lines(cpu: dict) -> list[str]:
    """The machine section's CPU line: vector features and oneDNN paths."""
    f = cpu["features"]
    extensions = [
        name for name, key in (("VNNI", "avx512_vnni"), ("BF16", "avx512_bf16")) if f[key]
    ]
    avx512 = _yes(f["avx512"]) + (f" ({', '.join(extensions)})" if extensions else "")
    variable = cpu["variable"]
    return [
        f"CPU vector features: AVX2 {_yes(f['avx2'])}, AVX-512 {avx512}, AVX-VNNI "
        f"{_yes(f['avx_vnni'])}, AMX {_yes(f['amx'])}; oneDNN {_on(cpu['onednn'])} in this run "
        f"(TF_ENABLE_ONEDNN_OPTS={variable if variable is not None else 'unset'}); a command "
        f'started with nothing set prints "{cpu["default_line"]}"',
        "",
    ]


def onednn_table(o: dict) -> list[str]:
    """The oneDNN section: each workload's img/s on the three paths, side by side."""
    sides = o["sides"]
    lines = _table(
        [
            "CPU paths (child processes, interleaved)",
            f"default ({_on(sides['default']['onednn'])}) img/s",
            "oneDNN off img/s",
            "oneDNN on img/s",
            "on / off",
            "default / faster",
        ],
        [
            [
                f"{workload}: {o[workload]['description']}",
                o[workload]["default_img_s"],
                o[workload]["off_img_s"],
                o[workload]["on_img_s"],
                f"{o[workload]['on_over_off']:.2f}x",
                f"{o[workload]['default_over_faster']:.2f}x",
            ]
            for workload in ("training", "inference", "evaluation")
            if workload in o
        ],
    )
    observed = ", ".join(
        f"{side} ({'unset' if s['variable'] is None else s['variable']}): {_on(s['onednn'])}"
        for side, s in sides.items()
    )
    return lines + [f"paths observed in the children: {observed}", ""]


def format_results(results: dict) -> str:
    """Every figure of ``results`` as Markdown tables, then the targets and the run's time."""
    env = results["environment"]
    lines = [
        f"VGG-16 (D) benchmarks: {env['cpu_count']} CPU(s) ({env['cpu']}), "
        f"{len(env['gpus'])} GPU(s), TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
        f"{env['mixed_precision']}{', XLA' if env['jit_compile'] else ''}"
        f"{', --quick' if env['quick'] else ''}; 1-minute load average "
        f"{env['load_average_start']:.2f} at the start, {env['load_average_end']:.2f} at the end; "
        f"{env['wall_seconds'] / 60:.1f} min wall"
        + (f", {env['cpu_seconds'] / 60:.1f} CPU-min" if "cpu_seconds" in env else ""),
        "",
    ]
    if "machine" in results:
        m = results["machine"]
        lines += [
            f"matmul peak ({m['dtype']}, {m['n']}^3): {m['peak_gflops']:.0f} GFLOP/s "
            f"(median {m['median_gflops']:.0f}); the model rows are read against the same "
            "matmul timed between their own repeats (matmul GFLOP/s)",
            "",
        ]
        if "mixed" in m:
            lines[-1:-1] = [
                f"matmul peak ({m['mixed']['dtype']}, {m['mixed']['n']}^3): "
                f"{m['mixed']['peak_gflops']:.0f} GFLOP/s, the bound of the mixed-"
                "precision model rows"
            ]
        if "cpu" in m:
            lines += cpu_lines(m["cpu"])
    if "onednn" in results:
        lines += onednn_table(results["onednn"])
    if "inference" in results:
        inf = results["inference"]
        lines += _table(
            [
                f"inference, {inf['image_size']} px ({inf['gmacs_per_image']:.2f} GMACs/img)",
                "vgg_tf img/s",
                "keras.applications img/s",
                "ratio",
                "matmul GFLOP/s",
                "vgg_tf of bound",
                "keras of bound",
            ],
            [
                [
                    f"batch {b['batch']}",
                    b["vgg_tf_img_s"],
                    b["keras_img_s"],
                    f"{b['ratio']:.2f}x",
                    f"{b['matmul_gflops']:.0f}",
                    _pct(b["vgg_tf_bound_fraction"]),
                    _pct(b["keras_bound_fraction"]),
                ]
                for b in inf["batches"]
            ],
        )
    if "training" in results:
        t = results["training"]
        lines += _table(
            [
                f"training, {t['image_size']} px",
                "vgg_tf step img/s",
                "keras.applications fit img/s",
                "ratio",
                "matmul GFLOP/s",
                "vgg_tf of bound",
                "keras of bound",
            ],
            [
                [
                    f"batch {t['batch']}",
                    t["vgg_tf_img_s"],
                    t["keras_img_s"],
                    f"{t['ratio']:.2f}x",
                    f"{t['matmul_gflops']:.0f}",
                    _pct(t["vgg_tf_bound_fraction"]),
                    _pct(t["keras_bound_fraction"]),
                ]
            ],
        )
    if "pipeline" in results:
        p = results["pipeline"]
        lines += _table(
            [
                f"input pipeline, S ({p['files']} JPEGs, {p['min_side']}-{p['max_side']} px)",
                "naive img/s",
                "fused img/s",
                "ratio",
                "naive img/CPU-s",
                "fused img/CPU-s",
                "ratio per CPU-s",
            ],
            [
                [
                    r["scale"],
                    r["naive_img_s"],
                    r["fused_img_s"],
                    f"{r['ratio']:.2f}x",
                    r["naive_img_per_cpu_s"],
                    r["fused_img_per_cpu_s"],
                    f"{r['cpu_ratio']:.2f}x",
                ]
                for r in p["scales"]
            ],
        )
    if "evaluation" in results:
        e = results["evaluation"]
        rows = [
            [f"Q = {r['q']}", r["dense_gmacs"], r["multicrop_gmacs"], f"{r['ratio']:.1f}x"]
            for r in e["per_scale"]
        ]
        rows.append(
            ["all scales", e["dense_gmacs"], e["multicrop_gmacs"], f"{e['mac_ratio']:.1f}x"]
        )
        rows.append(["wall s per image", e["dense_s"], e["multicrop_s"], f"{e['wall_ratio']:.1f}x"])
        lines += _table(
            [
                f"evaluation, D x{e['width_multiplier']:g}, {e['image'][0]}x{e['image'][1]} photo",
                "dense (image + flip) GMACs",
                "multi-crop (50 crops) GMACs",
                "ratio",
            ],
            rows,
        )
    if "serving" in results:
        s = results["serving"]
        lines += _table(
            [
                f"one JPEG, Q = {', '.join(map(str, s['scales']))}",
                "median ms",
                "p99 ms (~ max of the calls)",
                "max ms",
                "calls",
            ],
            [
                [
                    name,
                    s[key]["median_ms"],
                    s[key]["p99_ms"],
                    s[key].get("max_ms", ""),
                    s[key]["calls"],
                ]
                for name, key in (
                    ("serving_default", "serving"),
                    ("bare forward pass", "bare_forward"),
                )
            ]
            + [["ratio (medians)", f"{s['ratio']:.2f}x", "", "", ""]],
        )
        lines += [f"export: {s['export_s']:.1f} s, {s['export_mib']:.0f} MiB", ""]
    if "memory" in results:
        mem = results["memory"]
        est = mem["estimate"]
        lines += _table(
            [f"memory, training D, batch {mem['batch']}, {mem['image_size']} px", "MiB"],
            [
                ["resident before the model (TensorFlow, the batch)", mem["baseline_mib"]],
                ["resident once the model and optimizer are built", mem["built_rss_mib"]],
                ["peak resident", mem["peak_mib"]],
                ["peak - before", mem["growth_mib"]],
                ["estimate: weights + gradients + momentum", 3 * est["weights_mib"]],
                ["estimate: activations", est["activations_mib"]],
                ["estimate: total", est["total_mib"]],
                ["(peak - before) / estimate", f"{mem['growth_over_estimate']:.2f}x"],
            ],
        )
    lines += _table(
        ["target", "measured", "met"],
        [
            [
                t["name"],
                "not run"
                if t["value"] is None
                else (_pct(t["value"]) if "%" in t["name"] else f"{t['value']:.2f}x"),
                {True: "met", False: "NOT MET", None: "-"}[t["met"]],
            ]
            for t in results["targets"]
        ],
    )
    if "cpu_seconds" in env:
        lines.append(
            f"run time: {env['wall_seconds'] / 60:.1f} min wall, {env['cpu_seconds'] / 60:.1f} "
            "CPU-min (this process and its children, user + system)"
        )
    return "\n".join(lines)
