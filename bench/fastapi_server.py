"""The Python peer of the serving benchmark: a FastAPI + uvicorn server
(Debian's python3-fastapi, python3-uvicorn) that answers KServe V2 infer
requests for a small ONNX classifier computed with numpy.

    /usr/bin/python3 bench/fastapi_server.py MODEL.onnx PORT [WORKERS]

It reads the model's weights with python3-onnx and evaluates the chain of
Gemm / Relu / Softmax / ArgMax nodes the example models are made of (the
models of scripts/make_examples.py), so both servers compute the same
thing.  POST /v2/models/{name}/infer, GET /v2/health/ready.
"""
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

MODEL_PATH = os.environ.get("STRATUS_BENCH_MODEL", sys.argv[1] if len(sys.argv) > 1 else "")


def load(path):
    model = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = []
    for n in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        nodes.append((n.op_type, list(n.input), list(n.output), attrs))
    outputs = [o.name for o in model.graph.output]
    return inits, nodes, model.graph.input[0].name, outputs


INITS, NODES, INPUT, OUTPUTS = load(MODEL_PATH)


def run(x):
    env = {INPUT: x, **INITS}
    for op, ins, outs, attrs in NODES:
        if op == "Gemm":
            a, b = env[ins[0]], env[ins[1]]
            if attrs.get("transA"):
                a = a.T
            if attrs.get("transB"):
                b = b.T
            y = attrs.get("alpha", 1.0) * (a @ b)
            if len(ins) > 2:
                y = y + attrs.get("beta", 1.0) * env[ins[2]]
        elif op == "Relu":
            y = np.maximum(env[ins[0]], 0)
        elif op == "Softmax":
            z = env[ins[0]]
            e = np.exp(z - z.max(axis=attrs.get("axis", -1), keepdims=True))
            y = e / e.sum(axis=attrs.get("axis", -1), keepdims=True)
        elif op == "ArgMax":
            y = np.argmax(env[ins[0]], axis=attrs.get("axis", 0))
            if attrs.get("keepdims", 1):
                y = np.expand_dims(y, attrs.get("axis", 0))
            y = y.astype(np.int64)
        else:
            raise RuntimeError(f"bench server: no numpy version of {op}")
        env[outs[0]] = y.astype(np.float32) if y.dtype == np.float64 else y
    return {name: env[name] for name in OUTPUTS}


from fastapi import FastAPI, HTTPException, Request  # noqa: E402

app = FastAPI()
DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


@app.get("/v2/health/ready")
def ready():
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    body = await request.json()
    try:
        t = body["inputs"][0]
        x = np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise HTTPException(status_code=400, detail=str(e))
    outs = run(x)
    return {"model_name": name, "outputs": [
        {"name": k, "datatype": DATATYPES.get(v.dtype, "FP32"), "shape": list(v.shape), "data": v.ravel().tolist()}
        for k, v in outs.items()]}


if __name__ == "__main__":
    import uvicorn

    port = int(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.environ["STRATUS_BENCH_MODEL"] = MODEL_PATH
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    uvicorn.run("fastapi_server:app", host="127.0.0.1", port=port, workers=workers, log_level="warning",
                access_log=False)
