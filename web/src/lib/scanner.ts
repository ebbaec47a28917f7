// Camera QR scanning: the platform's BarcodeDetector where it exists (Android, ChromeOS, macOS), else jsQR
// over frames drawn from the video into a canvas. jsQR is loaded only on that second path.

/** Frames examined per second at most: enough for a person presenting a phone, light on a cheap device. */
const SCAN_INTERVAL_MS = 120;
/** Frames are scaled down to this width before jsQR: decoding cost grows with the pixel count. */
const MAX_DECODE_WIDTH = 800;

interface BarcodeDetectorConstructor {
  new (options: {
    formats: string[];
  }): { detect(source: CanvasImageSource): Promise<{ rawValue: string }[]> };
  getSupportedFormats(): Promise<string[]>;
}

interface Decoder {
  kind: "BarcodeDetector" | "jsQR";
  decode(video: HTMLVideoElement): Promise<string | undefined>;
}

async function platformDecoder(): Promise<Decoder | undefined> {
  const Detector = (globalThis as { BarcodeDetector?: BarcodeDetectorConstructor }).BarcodeDetector;
  if (!Detector) return undefined;
  try {
    if (!(await Detector.getSupportedFormats()).includes("qr_code")) return undefined;
    const detector = new Detector({ formats: ["qr_code"] });
    return { kind: "BarcodeDetector", decode: async (video) => (await detector.detect(video))[0]?.rawValue };
  } catch {
    return undefined;
  }
}

async function jsQrDecoder(): Promise<Decoder> {
  const { default: jsQR } = await import("jsqr");
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  if (!context) throw new Error("Canvas 2D is not available");
  return {
    kind: "jsQR",
    decode: async (video) => {
      const scale = Math.min(1, MAX_DECODE_WIDTH / video.videoWidth);
      const width = Math.round(video.videoWidth * scale);
      const height = Math.round(video.videoHeight * scale);
      if (width === 0 || height === 0) return undefined;
      canvas.width = width;
      canvas.height = height;
      context.drawImage(video, 0, 0, width, height);
      const frame = context.getImageData(0, 0, width, height);
      return jsQR(frame.data, width, height, { inversionAttempts: "dontInvert" })?.data || undefined;
    },
  };
}

/**
 * Watches the camera and calls `onCode` once per distinct code seen (a code held in view is one scan).
 * Scanning pauses until the promise `onCode` returns settles, so one answer is on screen at a time.
 */
export class QrScanner {
  private stream: MediaStream | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastCode: string | undefined;

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly onCode: (text: string) => Promise<void>,
  ) {}

  get active(): boolean {
    return this.stream !== undefined;
  }

  /** Starts the camera; resolves with the decoder in use. Rejects when there is no camera or no permission. */
  async start(): Promise<Decoder["kind"]> {
    if (this.stream) this.stop();
    // A restarted camera reads what is in front of it afresh, including the code it saw last.
    this.forget();
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error("No camera access here: the page must be served over https (or from localhost)");
    }
    const decoder = (await platformDecoder()) ?? (await jsQrDecoder());
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" } },
      audio: false,
    });
    this.stream = stream;
    this.video.srcObject = stream;
    this.video.muted = true;
    this.video.playsInline = true;
    await this.video.play();
    const tick = async () => {
      if (this.stream !== stream) return;
      try {
        if (this.video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA) {
          const code = await decoder.decode(this.video);
          if (code && code !== this.lastCode && this.stream === stream) {
            this.lastCode = code;
            await this.onCode(code);
          }
        }
      } catch {
        // A frame that cannot be read (the camera is still starting) is skipped; the next one is tried.
      }
      if (this.stream === stream) this.timer = setTimeout(tick, SCAN_INTERVAL_MS);
    };
    this.timer = setTimeout(tick, 0);
    return decoder.kind;
  }

  stop(): void {
    clearTimeout(this.timer);
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = undefined;
    this.video.srcObject = null;
  }

  /**
   * Lets a code count again while it is still in view (after a refusal, an error, a change of what is being
   * checked). With `code`, only if that is still the last one seen: a later code is not read twice.
   */
  forget(code?: string): void {
    if (code === undefined || code === this.lastCode) this.lastCode = undefined;
  }

  /** @deprecated Use `forget()`. */
  forgetLastCode(): void {
    this.forget();
  }
}
