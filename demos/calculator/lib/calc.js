/* eslint-disable @typescript-eslint/explicit-module-boundary-types -- a plain JavaScript demo, run as it is */
// The calculator's arithmetic, apart from its HTTP server.
export const OPERATIONS = ['add', 'sub', 'mul', 'div']

export function calculate (operation, a, b) {
  const x = Number(a)
  const y = Number(b)
  if (a == null || b == null || a === '' || b === '' || !Number.isFinite(x) || !Number.isFinite(y)) {
    return { error: 'give two numbers: ?num1=<number>&num2=<number>' }
  }
  switch (operation) {
    case 'add': return { value: x + y }
    case 'sub': return { value: x - y }
    case 'mul': return { value: x * y }
    case 'div': return y === 0 ? { error: 'division by zero' } : { value: x / y }
    default: return { error: `unknown operation ${operation}` }
  }
}
