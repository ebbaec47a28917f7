import { writeFileSync } from "node:fs";
import qrcode from "qrcode-generator";

// A camera for the browser: Chromium's fake capture device plays a .y4m file in a loop. One frame showing
// the QR code is enough. Y4M is raw video: a text header, then per frame `FRAME\n` and the Y, U and V planes
// (4:2:0: U and V at half resolution each way).

const WIDTH = 640;
const HEIGHT = 480;
const QUIET_ZONE_MODULES = 4;
const BLACK = 16;
const WHITE = 235;
const NEUTRAL_CHROMA = 128;

/** Writes a one-frame 640×480 Y4M video showing `text` as a QR code (the same encoder the pages use). */
export function writeQrVideo(path: string, text: string): void {
  const code = qrcode(0, "M");
  code.addData(text, "Byte");
  code.make();
  const modules = code.getModuleCount();
  const scale = Math.floor(Math.min(WIDTH, HEIGHT) / (modules + 2 * QUIET_ZONE_MODULES));
  if (scale < 2) throw new Error(`QR code of ${modules} modules is too dense for ${WIDTH}×${HEIGHT}`);
  const left = Math.floor((WIDTH - modules * scale) / 2);
  const top = Math.floor((HEIGHT - modules * scale) / 2);

  const luma = Buffer.alloc(WIDTH * HEIGHT, WHITE);
  for (let row = 0; row < modules; row += 1) {
    for (let column = 0; column < modules; column += 1) {
      if (!code.isDark(row, column)) continue;
      for (let y = 0; y < scale; y += 1) {
        const offset = (top + row * scale + y) * WIDTH + left + column * scale;
        luma.fill(BLACK, offset, offset + scale);
      }
    }
  }
  const chroma = Buffer.alloc((WIDTH / 2) * (HEIGHT / 2), NEUTRAL_CHROMA);
  const header = Buffer.from(`YUV4MPEG2 W${WIDTH} H${HEIGHT} F30:1 Ip A1:1 C420jpeg\n`);
  writeFileSync(path, Buffer.concat([header, Buffer.from("FRAME\n"), luma, chroma, chroma]));
}
