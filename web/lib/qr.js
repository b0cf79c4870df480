// carkey web key — QR code of the public key (placeholder until the encoder lands).
// SPDX-License-Identifier: MIT

export function qrSvg() {
  throw new Error('QR codes are not available');
}
