#!/usr/bin/env bash
# make gpu-check OUT=<dir>: the CUDA backend, run for real, in one short script for a GPU machine.
#
#   1. builds lib3dr._C with its CUDA kernels (FORCE_CUDA=1) for this GPU's architecture only,
#      against the torch already installed (nothing is installed: no network is assumed);
#   2. runs the CUDA tests (every test whose name says cuda: CUDA against "cpu" and "torch");
#   3. runs compute-sanitizer's memcheck and racecheck over benchmarks/gpu_case.py, a small
#      forward+backward of the rasterizer and the fused silhouette;
#   4. runs the GPU rows of benchmarks/bench_rasterizer.py and the unfused path's bandwidth floor.
# It writes <dir>/gpu-check.log (everything) and <dir>/gpu-check.md (one table per step), and
# exits 1 if a step failed. Without a GPU it says so and exits 0 having run nothing;
# GPU_CHECK_REHEARSE=1 then runs steps 2-4 on the CPU instead (no build, no sanitizer) to
# rehearse the script itself.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: benchmarks/gpu_check.sh OUTPUT_DIR}
mkdir -p "$out"
log="$out/gpu-check.log"
table="$out/gpu-check.md"
exec > >(tee "$log") 2>&1
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

rehearse=0
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  if [ "${GPU_CHECK_REHEARSE:-0}" != 1 ]; then
    echo "gpu-check: $python's torch sees no GPU here, so nothing was built or run."
    echo "gpu-check: GPU_CHECK_REHEARSE=1 rehearses the steps on the CPU."
    exit 0
  fi
  rehearse=1
  echo "gpu-check: REHEARSAL on the CPU: no CUDA build, no compute-sanitizer, CPU rows only"
fi

failed=0
rows=()
step() {  # step NAME COMMAND...: runs it, records pass/fail and seconds
  local name=$1 start=$SECONDS status
  shift
  echo; echo "=== $name: $*"
  "$@"
  status=$?
  rows+=("| $name | $([ $status = 0 ] && echo pass || echo "FAIL (exit $status)") | $((SECONDS - start)) s |")
  [ $status = 0 ] || failed=1
}

"$python" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
EOF

if [ $rehearse = 0 ]; then
  arch=$("$python" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
  step "build lib3dr._C with CUDA (sm_${arch/./})" env FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$arch" \
    MAX_JOBS="$(nproc)" "$python" -m pip install --no-build-isolation --no-deps --no-index -q -e .
  step "lib3dr sees the GPU" "$python" -c \
    "import lib3dr; b = lib3dr.backends(); print(b, lib3dr._backend._C.build_info()); assert 'cuda' in b"
  device=cuda
else
  device=cpu
fi

step "CUDA tests" "$python" -m pytest -q -p no:cacheprovider -rs tests/ -k "cuda"

if [ $rehearse = 0 ]; then
  sanitizer=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
  for tool in memcheck racecheck; do
    step "compute-sanitizer $tool" "$sanitizer" --tool "$tool" --error-exitcode 1 \
      "$python" benchmarks/gpu_case.py --device cuda
  done
else
  step "sanitizer case (on the CPU)" "$python" benchmarks/gpu_case.py --device cpu
fi

backends=$([ $rehearse = 0 ] && echo cuda || echo cpu)
step "bench_rasterizer ($backends)" "$python" benchmarks/bench_rasterizer.py --backends "$backends" \
  $([ $rehearse = 1 ] && echo "--only teapot --repeats 2") --json "$out/bench_rasterizer.json"
step "bandwidth floor of the unfused path" "$python" benchmarks/bandwidth_floor.py --device "$device" \
  --bench "$out/bench_rasterizer.json" --out "$out/bandwidth_floor.md"

{
  echo "# gpu-check $(date -u +%Y-%m-%dT%H:%MZ)$([ $rehearse = 1 ] && echo ' (rehearsal on the CPU)')"
  echo
  echo "| step | result | time |"
  echo "| --- | --- | --: |"
  printf '%s\n' "${rows[@]}"
  for part in "$out/bench_rasterizer.md" "$out/bandwidth_floor.md"; do
    [ -f "$part" ] && { echo; cat "$part"; }
  done
} > "$table"
echo; cat "$table"
exit $failed
