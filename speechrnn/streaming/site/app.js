// The page: microphone or file -> the exported graph in chunks -> live posteriors and detections.
"use strict";

const CHUNK_S = 0.1; // audio per graph call, as `speechrnn stream` defaults to
const PLOT_FRAMES = 500; // frames the plot shows
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
const $ = (id) => document.getElementById(id);

let spotter, description, run;

function newRun(source) {
  spotter.reset();
  run = { source, posteriors: [], detections: [], detector: new Detector(description), samples: 0 };
  $("detections").replaceChildren();
  document.body.dataset.state = "running";
}

async function feed(samples, final = false) {
  run.samples += samples.length;
  const rows = await spotter.push(samples, final);
  for (const row of rows) {
    run.posteriors.push(row);
    run.detector.push(row).forEach(show);
  }
  if (final) run.detector.finish().forEach(show);
  draw();
}

function show(detection) {
  run.detections.push(detection);
  const item = document.createElement("li");
  item.textContent = `${detection.label}  ${detection.start_s.toFixed(2)}-${detection.end_s.toFixed(2)} s` +
                     `  score ${detection.score.toFixed(2)}`;
  $("detections").append(item);
}

function finishRun() {
  const audioS = run.samples / description.sample_rate;
  const inferenceS = spotter.inferenceMs / 1000;
  window.lastRun = { source: run.source, posteriors: run.posteriors, detections: run.detections,
                     audio_s: audioS, inference_s: inferenceS };
  $("status").textContent = `${run.source}: ${audioS.toFixed(2)} s of audio, ${run.posteriors.length} frames, ` +
                            `real-time factor ${(inferenceS / audioS).toFixed(4)} (graph time / audio time)`;
  document.body.dataset.state = "done";
}

function draw() {
  const canvas = $("plot"), ctx = canvas.getContext("2d");
  const shown = run.posteriors.slice(-PLOT_FRAMES);
  const x = (t) => (t / PLOT_FRAMES) * canvas.width, y = (p) => canvas.height * (1 - p);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#999";
  ctx.setLineDash([4, 4]);
  ctx.beginPath();
  ctx.moveTo(0, y(description.operating_point.threshold));
  ctx.lineTo(canvas.width, y(description.operating_point.threshold));
  ctx.stroke();
  ctx.setLineDash([]);
  description.labels.forEach((_, c) => {
    ctx.strokeStyle = COLOURS[c % COLOURS.length];
    ctx.beginPath();
    shown.forEach((row, t) => (t ? ctx.lineTo(x(t), y(row[c])) : ctx.moveTo(x(t), y(row[c]))));
    ctx.stroke();
  });
}

async function fromFile(file) {
  const context = new AudioContext({ sampleRate: description.sample_rate }); // decodes and resamples to it
  const audio = await context.decodeAudioData(await file.arrayBuffer());
  await context.close();
  const mono = new Float32Array(audio.length);
  for (let c = 0; c < audio.numberOfChannels; c++) {
    audio.getChannelData(c).forEach((v, i) => { mono[i] += v / audio.numberOfChannels; });
  }
  newRun(file.name);
  const chunk = Math.round(CHUNK_S * description.sample_rate);
  for (let i = 0; i < mono.length; i += chunk) await feed(mono.subarray(i, i + chunk));
  await feed(new Float32Array(0), true);
  finishRun();
}

let microphone = null;

async function listen() {
  const context = new AudioContext({ sampleRate: description.sample_rate });
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  await context.audioWorklet.addModule("capture.js");
  const capture = new AudioWorkletNode(context, "capture");
  context.createMediaStreamSource(stream).connect(capture);
  newRun("the microphone");
  const chunk = Math.round(CHUNK_S * description.sample_rate);
  let pending = [], queued = 0, busy = Promise.resolve();
  capture.port.onmessage = ({ data }) => {
    pending.push(data);
    queued += data.length;
    if (queued < chunk) return;
    const samples = new Float32Array(queued);
    let at = 0;
    for (const part of pending) { samples.set(part, at); at += part.length; }
    pending = [];
    queued = 0;
    busy = busy.then(() => feed(samples)); // one graph call at a time, in order
  };
  microphone = { context, stream, stop: async () => {
    capture.port.onmessage = null;
    stream.getTracks().forEach((track) => track.stop());
    await context.close();
    await busy;
    await feed(new Float32Array(0), true);
    finishRun();
  } };
  $("listen").disabled = true;
  $("stop").disabled = false;
}

async function stop() {
  $("stop").disabled = true;
  await microphone.stop();
  microphone = null;
  $("listen").disabled = false;
}

async function main() {
  description = await (await fetch("model.json")).json();
  spotter = await Spotter.load("model.onnx", description);
  const point = description.operating_point;
  $("model").textContent = `${description.cell} spotter, ${description.sample_rate} Hz, labels ` +
    `${description.labels.join(", ")}; threshold ${point.threshold}, smoothing ${point.smooth_s} s, ` +
    `refractory ${point.refractory_s} s${point.tuned ? " (tuned)" : " (defaults: not tuned)"}`;
  $("legend").replaceChildren(...description.labels.map((label, c) => {
    const span = document.createElement("span");
    span.textContent = label;
    span.style.color = COLOURS[c % COLOURS.length];
    return span;
  }));
  $("file").onchange = (event) => fromFile(event.target.files[0]).catch(fail);
  $("listen").onclick = () => listen().catch(fail);
  $("stop").onclick = () => stop().catch(fail);
  for (const id of ["file", "listen"]) $(id).disabled = false;
  document.body.dataset.state = "ready";
}

function fail(error) {
  $("status").textContent = `error: ${error.message || error}`;
  document.body.dataset.state = "error";
  window.lastError = String(error.stack || error);
}

main().catch(fail);
