// A metronome for the inbox page. Browsers slow a background tab's own timers to about once a
// minute, but not a worker's, so the page keeps polling every few seconds while hidden.
"use strict";

let timer = null;
self.onmessage = (event) => {
  clearInterval(timer);
  timer = setInterval(() => self.postMessage("tick"), Number(event.data));
};
