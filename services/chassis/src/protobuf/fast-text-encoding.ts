import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";

/**
 * protobuf-es encodes every string field with TextEncoder.encode, one call
 * into C++ and one fresh buffer per string; for the short ASCII strings these
 * messages are made of (ids, names, currency codes) that call was a large
 * part of encoding a response. Short ASCII strings are copied in JavaScript
 * instead; anything longer or not ASCII still goes to TextEncoder, so the
 * bytes are the same either way.
 */
export function useFastShortStringEncoding(): void {
  const standard = getTextEncoding();
  const encoder = new TextEncoder();
  configureTextEncoding({
    checkUtf8: standard.checkUtf8,
    decodeUtf8: standard.decodeUtf8,
    encodeUtf8(text: string): Uint8Array<ArrayBuffer> {
      const length = text.length;
      if (length > maxCopiedLength) return encoder.encode(text);
      const bytes = new Uint8Array(length);
      for (let i = 0; i < length; i++) {
        const code = text.charCodeAt(i);
        if (code > 0x7f) return encoder.encode(text);
        bytes[i] = code;
      }
      return bytes;
    },
  });
}

/** Above this many characters TextEncoder is as fast as the loop. */
const maxCopiedLength = 128;
