import { InterruptedError } from './errors.ts'

/**
 * Reads a secret from stdin: all of it up to EOF when stdin is a pipe or file (the last line end
 * dropped), or one line typed without echo when it is a terminal. Never prompts otherwise.
 */
export async function readSecret (prompt: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WritableStream = process.stderr): Promise<string> {
  if (input.isTTY !== true) {
    const chunks: Buffer[] = []
    for await (const chunk of input) {
      chunks.push(chunk as Buffer)
    }
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  }
  output.write(prompt)
  input.setRawMode(true)
  input.resume()
  try {
    return await new Promise<string>((resolve, reject) => {
      let text = ''
      const onData = (data: Buffer): void => {
        for (const char of data.toString('utf8')) {
          if (char === '\r' || char === '\n' || char === '\u0004') {
            input.off('data', onData)
            resolve(text)
            return
          }
          if (char === '\u0003') {
            input.off('data', onData)
            reject(new InterruptedError())
            return
          }
          text = char === '\u007f' || char === '\b' ? text.slice(0, -1) : text + char
        }
      }
      input.on('data', onData)
    })
  } finally {
    input.setRawMode(false)
    input.pause()
    output.write('\n')
  }
}
