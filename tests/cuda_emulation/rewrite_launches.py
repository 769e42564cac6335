"""Rewrites the kernel launches of a CUDA source, ``kernel<...><<<grid, block, shared, stream>>>(args);``,
into ``::ccnn_emu::launch(grid, block, collective, [&] { kernel<...>(args); });`` (cuda_runtime.h),
so that a host C++ compiler builds it; `collective` is whether the kernel's body calls
__syncthreads or a warp shuffle or ballot (its threads then run concurrently; the others run one
after another). Usage: python rewrite_launches.py IN.cu OUT.cpp"""
import os
import re
import sys


def _match(text, index, step):
    """Index of the bracket matching the one at text[index], scanning forward (step 1) from an
    opening one or backward (step -1) from a closing one."""
    pairs = {"(": ")", "<": ">", "{": "}", ")": "(", ">": "<", "}": "{"}
    opening, closing = text[index], pairs[text[index]]
    depth, i = 0, index
    while 0 <= i < len(text):
        if text[i] == opening:
            depth += 1
        elif text[i] == closing:
            depth -= 1
            if depth == 0:
                return i
        i += step
    raise ValueError(f"unbalanced {opening} at {index}")


def _split_top_level(text):
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "(<[{":
            depth += 1
        elif ch in ")>]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


def collective_kernels(source):
    """Names of the __global__ functions whose body synchronises threads."""
    names = set()
    for match in re.finditer(r"__global__\s+(?:void\s+)?(?:__launch_bounds__\([^)]*\)\s+)?(?:void\s+)?(\w+)\s*\(", source):
        body_open = source.index("{", _match(source, match.end() - 1, 1))
        body = source[body_open:_match(source, body_open, 1)]
        if re.search(r"__syncthreads|__shfl\w*_sync|__ballot_sync", body):
            names.add(match.group(1))
    return names


def rewrite(source):
    collective = collective_kernels(source)
    out, position = [], 0
    while True:
        start = source.find("<<<", position)
        if start < 0:
            out.append(source[position:])
            return "".join(out)
        # the kernel expression: an identifier, then optionally <template arguments>
        i = start - 1
        while source[i].isspace():
            i -= 1
        if source[i] == ">":
            i = _match(source, i, -1) - 1
        match = re.search(r"[A-Za-z_][A-Za-z_0-9:]*$", source[:i + 1])
        if match is None:
            raise ValueError(f"no kernel name before <<< at {start}")
        kernel_begin = match.start()
        kernel = re.sub(r"\s+", " ", source[kernel_begin:start].strip())
        config_end = source.index(">>>", start)
        config = _split_top_level(source[start + 3:config_end])
        args_open = config_end + 3
        while source[args_open].isspace():
            args_open += 1
        if source[args_open] != "(":
            raise ValueError(f"no argument list after >>> at {config_end}")
        args_close = _match(source, args_open, 1)
        args = source[args_open:args_close + 1]
        out.append(source[position:kernel_begin])
        name = kernel.split("<")[0].strip().split("::")[-1]
        launch = (f"::ccnn_emu::launch(dim3({config[0]}), dim3({config[1]}), {str(name in collective).lower()}, "
                  f"[&] {{ {kernel}{args}; }})")
        lost_lines = source.count("\n", kernel_begin, args_close + 1) - launch.count("\n")
        out.append(launch + "\n" * lost_lines)  # (the lines after keep their numbers)
        position = args_close + 1


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        text = f.read()
    with open(sys.argv[2], "w") as f:
        f.write(f'#line 1 "{os.path.abspath(sys.argv[1])}"\n' + rewrite(text))  # (diagnostics name the .cu)
