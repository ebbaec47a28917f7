/**
 * R2 multipart parts must be at least 5 MiB (all but the last). Buffering one part at a time keeps memory
 * flat however large the export, and `put` of a stream would need its length in advance.
 */
export const EXPORT_PART_BYTES = 8 * 1024 * 1024;

function concat(chunks: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * Writes a stream to `key`, replacing whatever was there: small files in one put, large ones as a
 * multipart upload (aborted on failure, so no half-written object is ever visible).
 */
export async function writeStreamToR2(
  bucket: R2Bucket,
  key: string,
  stream: ReadableStream<Uint8Array>,
  metadata: R2HTTPMetadata,
): Promise<{ bytes: number }> {
  const reader = stream.getReader();
  let chunks: Uint8Array[] = [];
  let buffered = 0;
  let total = 0;
  let upload: R2MultipartUpload | undefined;
  const parts: R2UploadedPart[] = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (value) {
        chunks.push(value);
        buffered += value.length;
        total += value.length;
      }
      if (buffered >= EXPORT_PART_BYTES || (done && upload && buffered > 0)) {
        upload ??= await bucket.createMultipartUpload(key, { httpMetadata: metadata });
        parts.push(await upload.uploadPart(parts.length + 1, concat(chunks, buffered)));
        chunks = [];
        buffered = 0;
      }
      if (done) break;
    }
    if (upload) await upload.complete(parts);
    else await bucket.put(key, concat(chunks, buffered), { httpMetadata: metadata });
    return { bytes: total };
  } catch (error) {
    await upload?.abort().catch(() => undefined);
    throw error;
  }
}
