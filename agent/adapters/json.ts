/** JSON values as adapters see them: adapter options, tool arguments and tool parameter schemas. */
export type JsonSchema = { [key: string]: JsonValue }
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }
