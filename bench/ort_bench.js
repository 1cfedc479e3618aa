// ort_bench.js - the ONNX Runtime side of `make bench` (onnxruntime-node).
//   node ort_bench.js ORT_MODULE_DIR MODEL SHAPE(comma dims) SECONDS
// Prints one JSON object: session_create_ms, runs, p50_us, p90_us, p99_us,
// inferences_per_s.  One intra-op and one inter-op thread, all graph
// optimisations, random float32 input in [-1, 1).
const [moduleDir, model, shapeText, secondsText] = process.argv.slice(2);
const ort = require(moduleDir);

function pct(sorted, p) {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i];
}

(async () => {
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const createMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const shape = shapeText.split(',').map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let seed = 12345;
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    data[i] = seed / 1073741824 - 1;
  }
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', data, shape);
  for (let i = 0; i < 10; i++) await session.run(feeds);
  const budget = Number(secondsText) * 1e9;
  const lat = [];
  const start = process.hrtime.bigint();
  let now = start;
  while (lat.length < 5 || Number(now - start) < budget) {
    const a = process.hrtime.bigint();
    await session.run(feeds);
    now = process.hrtime.bigint();
    lat.push(Number(now - a) / 1000);
  }
  const wall = Number(now - start) / 1e9;
  lat.sort((a, b) => a - b);
  console.log(JSON.stringify({
    session_create_ms: createMs, runs: lat.length, p50_us: pct(lat, 0.5), p90_us: pct(lat, 0.9),
    p99_us: pct(lat, 0.99), inferences_per_s: lat.length / wall,
  }));
})().catch((e) => { console.error(String(e)); process.exit(1); });
