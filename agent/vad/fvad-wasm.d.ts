/** The slice of @echogarden/fvad-wasm (libfvad, the WebRTC VAD, as Emscripten wasm) that agent/vad/webrtc.ts uses; the package ships no types. */
declare module '@echogarden/fvad-wasm' {
  export interface FvadModule {
    readonly HEAP16: Int16Array
    _malloc(bytes: number): number
    _free(ptr: number): void
    _fvad_new(): number
    _fvad_free(inst: number): void
    _fvad_reset(inst: number): void
    /** 0 (quality) … 3 (very aggressive); returns 0 or -1. */
    _fvad_set_mode(inst: number, mode: number): number
    /** 8000, 16000, 32000 or 48000; returns 0 or -1. */
    _fvad_set_sample_rate(inst: number, rate: number): number
    /** 10, 20 or 30 ms of samples at `ptr`; returns 1 (speech), 0 (not) or -1 (bad length). */
    _fvad_process(inst: number, ptr: number, length: number): number
  }
  function createFvad(moduleArg?: object): Promise<FvadModule>
  export default createFvad
}
