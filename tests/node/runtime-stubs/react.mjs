// The few React hooks `use-dynamic-filters.js` calls, on a one-component synchronous renderer:
// state lives in slots across renders, memos are recomputed, effects do not run (they only
// prefetch option lists over the network, which the probe does not need).
let current = null;
let slot = 0;

export function render(hook) {
  const handle = {
    slots: [],
    result: null,
    rerender() {
      current = handle;
      slot = 0;
      try {
        handle.result = hook();
      } finally {
        current = null;
      }
      return handle.result;
    },
  };
  handle.rerender();
  return handle;
}

export function useState(initial) {
  const handle = current;
  const index = slot++;
  if (!(index in handle.slots)) handle.slots[index] = typeof initial === 'function' ? initial() : initial;
  const set = (next) => {
    handle.slots[index] = typeof next === 'function' ? next(handle.slots[index]) : next;
  };
  return [handle.slots[index], set];
}

export function useRef(initial) {
  const [ref] = useState(() => ({ current: initial }));
  return ref;
}

export const useMemo = (compute) => compute();
export const useCallback = (fn) => fn;
export const useEffect = () => {};
