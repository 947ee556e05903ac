# speechrnn: `make help` lists the targets.
VENV    ?= .venv
PY      := $(VENV)/bin/python
DATA    ?= speech_commands
MODEL   ?= lstm
TRAINER ?= gpu
ARGS    ?=
JOBS    ?= 2
RUN_DIR ?= runs/$(lastword $(DATA))-$(MODEL)
# a corpus whose recipe sets model keys has them in configs/experiment/<data>.yaml (fsdd does)
EXPERIMENT ?= $(wildcard $(foreach data,$(DATA),configs/experiment/$(data).yaml))

.PHONY: help install demo train test test-slow lint bench sweep gpu-check gpu-bench streaming loso tune web graph-bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install speechrnn (editable) with dev tools

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund

web: web/node_modules/.package-lock.json  ## onnxruntime-web for the page `speechrnn export --format web` builds (npm)

demo: install  ## train and compare RNN, GRU and LSTM on the embedded corpus (CPU, no download)
	$(PY) -m pipelines.demo $(ARGS)

train: install  ## make train DATA=<name(s), stacked> MODEL=<rnn|gru|lstm> TRAINER=<cpu|gpu> ARGS="<overrides>"
	$(VENV)/bin/speechrnn fit $(foreach data,$(DATA),--config configs/data/$(data).yaml) \
		--config configs/model/$(MODEL).yaml \
		--config configs/trainer/base.yaml --config configs/trainer/$(TRAINER).yaml \
		$(foreach experiment,$(EXPERIMENT),--config $(experiment)) --run_dir $(RUN_DIR) $(ARGS)

test: install  ## the test suite (under 10 minutes on 2 CPU cores)
	$(VENV)/bin/pytest -q

test-slow: install  ## the slow tests kept out of `make test`
	$(VENV)/bin/pytest -q -m slow

sweep: install  ## accuracy, gradients and cost against length: make sweep ARGS="--grid configs/sweep/full.yaml"
	OMP_NUM_THREADS=1 $(PY) -m pipelines.sweep --out runs/sweep --jobs $(JOBS) $(ARGS)

loso: install  ## leave-one-speaker-out on FSDD, every encoder: make loso ARGS="--epochs 10"
	OMP_NUM_THREADS=1 $(PY) -m pipelines.loso --out runs/loso --data_root $(FSDD_ROOT) $(ARGS)

tune: install  ## every cell tuned alike on FSDD, recipes chosen by validation accuracy (configs/tune/fsdd.yaml)
	OMP_NUM_THREADS=1 $(PY) -m pipelines.tune --out runs/tune $(ARGS) -- --data.init_args.data_root=$(FSDD_ROOT)

# FSDD is read where it lies (read-only is fine); without a copy beside the clone it is downloaded.
# One torch thread per process: on a shared CPU, multi-threaded ops wait on descheduled threads
# and timings swing tenfold; both sides of every comparison run the same way.
FSDD_ROOT ?= $(if $(wildcard ../shared/data/fsdd/recordings),../shared/data,data)
BENCH_OUT ?= runs/bench

bench: install  ## data-path throughput against a standard baseline, on CPU (FSDD_ROOT=<folder with fsdd/>)
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run --fsdd_root $(FSDD_ROOT) --out $(BENCH_OUT) $(ARGS)

streaming: install  ## keyword spotting: RNN, GRU, LSTM trained on continuous audio, scored on an unheard voice
	OMP_NUM_THREADS=1 $(PY) -m pipelines.streaming --out runs/streaming --data-root $(FSDD_ROOT) $(ARGS)

lint: install  ## ruff
	$(VENV)/bin/ruff check speechrnn pipelines tests benchmarks

gpu-check: install  ## one bf16 epoch with features on the GPU; says so and exits 0 without a GPU
	$(PY) -m benchmarks.gpu_check $(ARGS)

gpu-bench: install  ## the training path, an SC-sized epoch and minGRU's scan against cuDNN, on a GPU
	$(PY) -m benchmarks.gpu_bench --fsdd_root $(FSDD_ROOT) --out runs/gpu-bench $(ARGS)

graph-bench: install  ## real-time factor of the one-graph spotter against the Python front end and the step
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.graph_rtf --fsdd_root $(FSDD_ROOT) $(ARGS)
