// The exported graph in onnxruntime-web and the detector: what `speechrnn stream` does, in the browser.
// Both read only model.json, the description `speechrnn export` stores in the ONNX file.
"use strict";

class Spotter {
  // audio chunks (Float32Array at model.sample_rate) -> posteriors per frame (Float32Array rows)
  static async load(modelUrl, description) {
    ort.env.wasm.numThreads = 1; // a plain http server gives no cross-origin isolation, so no threads
    ort.env.wasm.wasmPaths = "./"; // the runtime's files sit beside the page: nothing from outside
    const session = await ort.InferenceSession.create(modelUrl, { executionProviders: ["wasm"] });
    return new Spotter(session, description);
  }

  constructor(session, description) {
    this.session = session;
    this.description = description;
    this.reset();
  }

  reset() {
    this.state = this.description.state.map((s) => {
      const size = s.shape.reduce((a, b) => a * b, 1);
      const data = s.dtype === "int64" ? new BigInt64Array(size).fill(BigInt(s.fill))
                                       : new Float32Array(size).fill(s.fill);
      return new ort.Tensor(s.dtype, data, s.shape);
    });
    this.inferenceMs = 0; // time spent in session.run
  }

  // posteriors of the frames this chunk completes; `final` flushes the end of the stream
  async push(samples, final = false) {
    const feeds = {
      audio: new ort.Tensor("float32", samples, [samples.length]),
      final: new ort.Tensor("bool", Uint8Array.from([final ? 1 : 0]), [1]),
    };
    this.description.state.forEach((s, i) => { feeds[s.name] = this.state[i]; });
    const started = performance.now();
    const out = await this.session.run(feeds);
    this.inferenceMs += performance.now() - started;
    this.state = this.description.state.map((s) => out["next_" + s.name]);
    const posteriors = out.posteriors;
    const [frames, classes] = posteriors.dims;
    const rows = [];
    for (let t = 0; t < frames; t++) rows.push(Array.from(posteriors.data.subarray(t * classes, (t + 1) * classes)));
    return rows;
  }
}

class Detector {
  // posteriors per frame -> detections, as speechrnn.streaming.detect.Detector finds them
  constructor(description) {
    const point = description.operating_point;
    this.labels = description.labels;
    this.keywords = this.labels.map((_, i) => i).filter((i) => !description.background.includes(this.labels[i]));
    this.threshold = point.threshold;
    this.window = point.window_frames;
    this.refractory = point.refractory_frames;
    this.frameS = description.frame_s;
    this.lookaheadS = description.lookahead_s;
    this.history = []; // the keyword scores of the last `window` frames
    this.frame = 0;
    this.event = null; // {start, last, score, keyword} of the open detection
    this.quietUntil = 0;
    this.wasBelow = true;
  }

  // the detections that ended at this frame, given its posteriors
  push(posteriors) {
    this.history.push(this.keywords.map((i) => posteriors[i]));
    if (this.history.length > this.window) this.history.shift();
    let best = -1, bestId = 0;
    this.keywords.forEach((_, k) => {
      const smoothed = this.history.reduce((sum, row) => sum + row[k], 0) / this.window;
      if (smoothed > best) { best = smoothed; bestId = k; }
    });
    const above = best >= this.threshold;
    const done = [];
    if (this.event && !above) done.push(this.close());
    if (above && this.event) {
      if (best > this.event.score) { this.event.score = best; this.event.keyword = bestId; }
      this.event.last = this.frame;
    } else if (above && this.wasBelow && this.frame >= this.quietUntil) {
      this.event = { start: this.frame, last: this.frame, score: best, keyword: bestId };
    }
    this.wasBelow = !above;
    this.frame += 1;
    return done;
  }

  finish() { return this.event ? [this.close()] : []; }

  close() {
    const { start, last, score, keyword } = this.event;
    this.event = null;
    this.quietUntil = last + 1 + this.refractory;
    return { label: this.labels[this.keywords[keyword]], start_s: start * this.frameS, end_s: last * this.frameS,
             score, fired_s: start * this.frameS + this.lookaheadS };
  }
}
