# Stratus - one plain Makefile.
#
#   make                  build bin/stratus
#   make deps             install the Debian packages the project needs
#   make test             deps, build, unit + fuzz-replay + e2e tests
#   make run              serve the example models on :8080 (PORT=...)
#   make bench            benchmarks side by side with the peers
#   make fuzz             libFuzzer on every parser (FUZZ_SECONDS each)
#   make SANITIZE=address,undefined test   (or SANITIZE=thread)

CC       ?= cc
SANITIZE ?=
OPT      ?= -O2
comma    := ,
VARIANT  := $(if $(SANITIZE),san-$(subst $(comma),-,$(SANITIZE)),release)
OUT      := build/$(VARIANT)

WARN     := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wvla -Wformat=2 -Wno-format-nonliteral \
            -Wno-type-limits
CFLAGS   += -std=c11 $(OPT) -g -D_GNU_SOURCE -Isrc -I$(OUT)/gen $(WARN) -Werror \
            -fno-strict-aliasing -pthread -MMD -MP
LDLIBS   += -lm -lpthread -lsqlite3 -lcrypto
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZE)
endif

STRATUS  := $(if $(SANITIZE),$(OUT)/stratus,bin/stratus)

# `make V=1` shows full command lines.
Q        := $(if $(V),,@)
say       = $(if $(V),,@printf '  %-6s %s\n' $(1) $(2))

LIB_SRC   ?= $(sort $(shell find src -name "*.c" ! -path src/cli/main.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(OUT)/obj/%.o)
LIB       := $(OUT)/libstratus.a
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(OUT)/tests/%)
FUZZ_SRC  := $(sort $(wildcard fuzz/*.c))
FUZZ_NAMES:= $(FUZZ_SRC:fuzz/%.c=%)
REPLAY_BIN:= $(FUZZ_NAMES:%=$(OUT)/fuzz/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(OUT)/bench/%)

.PHONY: all deps test run bench fuzz clean unit e2e replay conformance
all: $(STRATUS)

# --- build info: regenerated only when its content changes -----------------
BUILDINFO := $(OUT)/gen/buildinfo.h
GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
GIT_DIRTY  := $(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
$(BUILDINFO): FORCE
	@mkdir -p $(@D)
	@printf '#define ST_GIT_COMMIT "%s"\n#define ST_BUILD_FLAGS "%s"\n#define ST_COMPILER "%s"\n' \
	  '$(GIT_COMMIT)$(GIT_DIRTY)' '$(OPT)$(if $(SANITIZE), -fsanitize=$(SANITIZE))' \
	  "$$($(CC) --version | head -n1)" > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(OUT)/obj/src/cli/version.o: $(BUILDINFO)

# Kernels want loops of unknown length vectorised, which GCC 12 does only
# from -O3 (its -O2 cost model is "very cheap").  -O3's inlining makes
# -Wmaybe-uninitialized misfire on the out-parameter pattern used
# throughout (fill *out, return a status), so that one warning is off there.
$(OUT)/obj/src/engine/%.o: OPT := -O3 -Wno-maybe-uninitialized

$(OUT)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

$(OUT)/stratus: $(OUT)/obj/src/cli/main.o $(LIB)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

bin/stratus: $(OUT)/stratus
	@mkdir -p bin
	@cp $< $@

# --- tests -----------------------------------------------------------------
$(OUT)/tests/%: tests/unit/%.c tests/unit/testing.h $(LIB)
	@mkdir -p $(@D)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) $< $(LIB) $(LDLIBS) -lcmocka -o $@

# Fuzz targets built as plain programs that replay their seed corpus.
$(OUT)/fuzz/%: fuzz/%.c fuzz/replay/replay.c $(LIB)
	@mkdir -p $(@D)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< fuzz/replay/replay.c $(LIB) $(LDLIBS) -o $@

test: deps $(STRATUS) $(UNIT_BIN) $(REPLAY_BIN) $(OUT)/conformance
	@STRATUS_BIN=$(abspath $(STRATUS)) OUT=$(OUT) ONNX_DATA=$(ONNX_DATA) sh tests/run.sh

unit: $(UNIT_BIN)
	@OUT=$(OUT) LAYERS=unit sh tests/run.sh
replay: $(REPLAY_BIN)
	@OUT=$(OUT) LAYERS=replay sh tests/run.sh
e2e: $(STRATUS)
	@STRATUS_BIN=$(abspath $(STRATUS)) OUT=$(OUT) LAYERS=e2e sh tests/run.sh

# --- ONNX conformance (Debian's libonnx-testdata) -------------------------------
ONNX_DATA ?= /usr/share/libonnx-testdata/data
CONF_DIRS := $(ONNX_DATA)/node $(ONNX_DATA)/pytorch-converted $(ONNX_DATA)/pytorch-operator $(ONNX_DATA)/simple
$(OUT)/conformance: tests/conformance/run.c $(LIB)
	@mkdir -p $(@D)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -Wno-format-truncation $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

# Every case, with tables per folder and operator; refreshes the list of
# passing cases that `make test` keeps passing.
conformance: deps $(OUT)/conformance
	@$(OUT)/conformance --write-passing tests/conformance/passing.txt --markdown docs/conformance.md \
	    $(CONF_DIRS) | tee $(OUT)/conformance.txt

# The demo: the example repository (scripts/make_examples.py) on $(PORT).
PORT ?= 8080
run: $(STRATUS)
	@echo "stratus serve on http://localhost:$(PORT) with examples/models (Ctrl-C stops it). Try:"
	@echo "  curl localhost:$(PORT)/v2/models/iris"
	@echo "  curl -d @examples/iris_request.json localhost:$(PORT)/v2/models/iris/infer"
	@echo "  curl -d @examples/iris_request.json localhost:$(PORT)/v2/models/iris/versions/1/infer"
	@echo "  curl -d '{\"instances\": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]}' localhost:$(PORT)/v1/models/iris:predict"
	@echo "  curl -H 'Content-Type: text/csv' -d '6.3,3.3,6.0,2.5' localhost:$(PORT)/invocations"
	@echo "  curl localhost:$(PORT)/metrics"
	@exec ./$(STRATUS) serve --models examples/models --port $(PORT)

# --- benchmarks --------------------------------------------------------------
$(OUT)/bench/%: bench/%.c bench/bench.h $(LIB)
	@mkdir -p $(@D)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) $(LDLIBS) $(BENCH_LIBS_$*) -o $@
BENCH_LIBS_json_decode := -ljansson -lcjson
BENCH_LIBS_gemm := -lopenblas

bench: deps $(STRATUS) $(BENCH_BIN)
	@OUT=$(OUT) STRATUS_BIN=$(abspath $(STRATUS)) sh bench/run.sh

# --- fuzzing (clang + libFuzzer) ---------------------------------------------
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_SAN     := address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -std=c11 -O1 -g -D_GNU_SOURCE -Isrc -I$(OUT)/gen -pthread
FUZZ_LIB_SRC := $(filter-out src/cli/%,$(LIB_SRC))
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_LIB     := build/fuzz/libstratus.a
# The library is compiled once (instrumented for coverage, not linked with
# the fuzzer's main), so each target costs one small compile and a link.
build/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(call say,CLANG,$<)
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -MMD -MP -c $< -o $@
# clang takes over ten minutes on the unrolled SIMD GEMM tiles under ASan;
# they take no outside bytes (the unit tests run them under ASan with gcc),
# so fuzz builds compile them with coverage only.
build/fuzz/obj/src/engine/kernels/gemm_%.o: src/engine/kernels/gemm_%.c
	@mkdir -p $(@D)
	$(call say,CLANG,$<)
	$(Q)clang $(FUZZ_CFLAGS) -O2 -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^
build/fuzz/%: fuzz/%.c $(FUZZ_LIB)
	@mkdir -p $(@D)
	$(call say,LINK,$@)
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) $< $(FUZZ_LIB) $(LDLIBS) -o $@

fuzz: deps $(FUZZ_TARGETS:%=build/fuzz/%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus-$$t build/fuzz/findings-$$t; \
	  echo "fuzz $$t for $(FUZZ_SECONDS)s"; \
	  build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/findings-$$t/ \
	    build/fuzz/corpus-$$t fuzz/corpus/$$t || exit 1; \
	done

# --- dependencies ------------------------------------------------------------
deps:
	@sh scripts/deps.sh

clean:
	rm -rf build bin

-include $(shell find $(OUT) build/fuzz/obj -name '*.d' 2>/dev/null)
