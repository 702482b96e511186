// Results kept in this browser (IndexedDB), so that a reload or a closed tab loses nothing until
// the user removes or clears them: each item's photo, its model alpha, its edits and settings,
// and its latest result file. Nothing here leaves the device.

const DATABASE = 'cutout-results';
const STORE = 'items';

/** @type {Promise<IDBDatabase> | null} */
let opened = null;

function database() {
  opened ||= new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: 'id' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  opened.catch(() => (opened = null));
  return opened;
}

/** @param {(store: IDBObjectStore) => IDBRequest | void} work */
async function transaction(mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request ? request.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new DOMException('the transaction was aborted', 'AbortError'));
  });
}

/**
 * An item as stored: what app.js needs to show it again and render it without the model.
 * @typedef {object} StoredItem
 * @property {number} id
 * @property {string} name
 * @property {Blob} file the photo
 * @property {'pending' | 'completed'} status
 * @property {any} settings its export settings (a background picture is a Blob in them)
 * @property {boolean} customised
 * @property {any[]} history its strokes and resets
 * @property {any[]} future what redo brings back
 * @property {boolean} downloaded
 * @property {ArrayBuffer} [alpha] the model's alpha at the photo's size
 * @property {number} [inputWidth]
 * @property {number} [inputHeight]
 * @property {Blob} [result] the latest result file
 * @property {number} [resultWidth]
 * @property {number} [resultHeight]
 */

/** Stores (or replaces) an item. @param {StoredItem} record */
export function keep(record) {
  return transaction('readwrite', (store) => store.put(record));
}

/** @param {number} id */
export function forget(id) {
  return transaction('readwrite', (store) => store.delete(id));
}

export function forgetAll() {
  return transaction('readwrite', (store) => store.clear());
}

/** Every stored item, oldest first; none when storage cannot be opened. @returns {Promise<StoredItem[]>} */
export async function keptItems() {
  try {
    return (await transaction('readonly', (store) => store.getAll())) || [];
  } catch (e) {
    console.warn('Cutout: earlier results could not be read:', e);
    return [];
  }
}
