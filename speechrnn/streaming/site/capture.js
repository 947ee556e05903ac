// AudioWorklet: hands the microphone's samples (at the context's rate, the model's) to the page.
class Capture extends AudioWorkletProcessor {
  process(inputs) {
    if (inputs[0].length) this.port.postMessage(inputs[0][0].slice());
    return true;
  }
}
registerProcessor("capture", Capture);
