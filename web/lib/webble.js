// carkey web key — the thin Web Bluetooth adapter: find the car, connect, subscribe, say "ready", run the link.
// SPDX-License-Identifier: MIT
//
// `bluetooth` is navigator.bluetooth, or anything shaped like it (the virtual air
// stand-in, air_bluetooth.js). Only standard Web Bluetooth calls are used.

import { bytes } from './bytes.js';
import { INDICATE_UUID, READY, SERVICE_UUID, WRITE_UUID, runLink } from './frame.js';

// The chooser shows only the car with this name that offers carkey's service.
export async function requestCar(bluetooth, name) {
  return bluetooth.requestDevice({ filters: [{ name, services: [SERVICE_UUID] }] });
}

// A car this origin was already allowed to use (no chooser), where the browser offers getDevices().
export async function rememberedCar(bluetooth, name) {
  if (typeof bluetooth.getDevices !== 'function') return null;
  const devices = await bluetooth.getDevices();
  return devices.find((d) => d.name === name) || null;
}

// One visit: connect, answer the car's APDUs with `process`, resolve to the link log when it disconnects.
export async function visit(device, process, options = {}) {
  const server = await device.gatt.connect();
  try {
    const service = await server.getPrimaryService(SERVICE_UUID);
    const writer = await service.getCharacteristic(WRITE_UUID);
    const indicator = await service.getCharacteristic(INDICATE_UUID);
    const transport = {
      write: (chunk) => writer.writeValueWithResponse(chunk),
      disconnect: () => device.gatt.disconnect(),
    };
    const done = runLink(transport, process, options);
    const onValue = (event) => transport.onChunk(bytes(event.target.value).slice());
    const onGone = () => transport.onDisconnect();
    indicator.addEventListener('characteristicvaluechanged', onValue);
    device.addEventListener('gattserverdisconnected', onGone);
    try {
      await indicator.startNotifications();
      await writer.writeValueWithResponse(READY);
      return await done;
    } finally {
      indicator.removeEventListener('characteristicvaluechanged', onValue);
      device.removeEventListener('gattserverdisconnected', onGone);
    }
  } finally {
    if (device.gatt.connected) device.gatt.disconnect();
  }
}
