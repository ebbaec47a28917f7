// Sounds and vibration for a verdict, so staff know the answer without looking: one high beep for
// accepted, two low buzzes for refused, three short mid beeps for not checked. Generated tones (no audio
// files to download), and silence where the platform offers neither.

export type Signal = "accepted" | "refused" | "unchecked";

interface Tone {
  hz: number;
  ms: number;
  wave: OscillatorType;
}

/** Each signal's tones, played one after another with a short gap. */
const TONES: Record<Signal, Tone[]> = {
  accepted: [{ hz: 1_320, ms: 140, wave: "sine" }],
  refused: [
    { hz: 196, ms: 180, wave: "square" },
    { hz: 196, ms: 180, wave: "square" },
  ],
  unchecked: [
    { hz: 660, ms: 90, wave: "triangle" },
    { hz: 660, ms: 90, wave: "triangle" },
    { hz: 660, ms: 90, wave: "triangle" },
  ],
};
const GAP_MS = 80;
/** Quiet enough for an indoor gate, loud enough over a queue; a short fade avoids clicks. */
const VOLUME = 0.25;
const FADE_S = 0.01;

/** navigator.vibrate patterns (on, off, on… in ms), distinct by feel. */
const VIBRATIONS: Record<Signal, number[]> = {
  accepted: [80],
  refused: [220, 100, 220],
  unchecked: [90, 60, 90, 60, 90],
};

let audio: AudioContext | undefined;

/**
 * Browsers start audio only from a user gesture: the first tap on the page creates (or resumes) the
 * context, so later verdicts, which arrive without a gesture, can sound.
 */
export function unlockSoundOnFirstTap(): void {
  const unlock = () => {
    try {
      audio ??= new AudioContext();
      void audio.resume().catch(() => {});
    } catch {
      // No Web Audio here: verdicts stay silent.
    }
  };
  document.addEventListener("pointerdown", unlock, { once: true, capture: true });
  document.addEventListener("keydown", unlock, { once: true, capture: true });
}

function playTones(tones: Tone[]): void {
  if (audio?.state !== "running") return;
  let at = audio.currentTime;
  for (const tone of tones) {
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    const end = at + tone.ms / 1000;
    oscillator.type = tone.wave;
    oscillator.frequency.value = tone.hz;
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(VOLUME, at + FADE_S);
    gain.gain.setValueAtTime(VOLUME, end - FADE_S);
    gain.gain.linearRampToValueAtTime(0, end);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start(at);
    oscillator.stop(end);
    at = end + GAP_MS / 1000;
  }
}

/** Sounds and vibrates `signal`, as far as this device can. */
export function announce(signal: Signal): void {
  playTones(TONES[signal]);
  // Without a tap on the page first, the browser refuses (and logs) a vibration: ask only once allowed.
  const activation = (navigator as { userActivation?: { hasBeenActive: boolean } }).userActivation;
  if (activation?.hasBeenActive && typeof navigator.vibrate === "function") {
    navigator.vibrate(VIBRATIONS[signal]);
  }
}
