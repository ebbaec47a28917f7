import qrcode from "qrcode-generator";

/** The quiet zone the QR spec requires around the symbol, in modules. */
const QUIET_ZONE_MODULES = 4;
/** Device pixels per module: crisp when the canvas is scaled up to fill the screen with CSS. */
const PIXELS_PER_MODULE = 8;

/**
 * Draws `text` as a QR code (byte mode, error correction M, smallest version that fits) onto `canvas`.
 * A QR token is a few hundred base64url characters, which fits a version around 14.
 */
export function drawQr(canvas: HTMLCanvasElement, text: string): void {
  const code = qrcode(0, "M");
  code.addData(text, "Byte");
  code.make();
  const modules = code.getModuleCount();
  const size = (modules + 2 * QUIET_ZONE_MODULES) * PIXELS_PER_MODULE;
  canvas.width = size;
  canvas.height = size;
  const context = canvas.getContext("2d");
  if (!context) throw new Error("Canvas 2D is not available");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, size, size);
  context.fillStyle = "#000";
  for (let row = 0; row < modules; row += 1) {
    for (let column = 0; column < modules; column += 1) {
      if (!code.isDark(row, column)) continue;
      context.fillRect(
        (column + QUIET_ZONE_MODULES) * PIXELS_PER_MODULE,
        (row + QUIET_ZONE_MODULES) * PIXELS_PER_MODULE,
        PIXELS_PER_MODULE,
        PIXELS_PER_MODULE,
      );
    }
  }
}
