/* eslint-disable require-yield */
import { decodeMessage, encodeMessage, enumeration, message, streamMessage } from 'protons-runtime';
export var StatusRequest;
(function (StatusRequest) {
    let _codec;
    StatusRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {};
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, StatusRequest.codec());
    }
    StatusRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, StatusRequest.codec(), opts);
    }
    StatusRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, StatusRequest.codec(), opts);
    }
    StatusRequest.stream = stream;
})(StatusRequest || (StatusRequest = {}));
export var Capacity;
(function (Capacity) {
    let _codec;
    Capacity.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.instances != null && obj.instances !== 0)) {
                    w.uint32(8);
                    w.uint32(obj.instances);
                }
                if ((obj.maxInstances != null && obj.maxInstances !== 0)) {
                    w.uint32(16);
                    w.uint32(obj.maxInstances);
                }
                if ((obj.cpu != null && obj.cpu !== 0)) {
                    w.uint32(25);
                    w.double(obj.cpu);
                }
                if ((obj.cpuBudget != null && obj.cpuBudget !== 0)) {
                    w.uint32(33);
                    w.double(obj.cpuBudget);
                }
                if ((obj.memoryMb != null && obj.memoryMb !== 0)) {
                    w.uint32(40);
                    w.uint32(obj.memoryMb);
                }
                if ((obj.memoryBudgetMb != null && obj.memoryBudgetMb !== 0)) {
                    w.uint32(48);
                    w.uint32(obj.memoryBudgetMb);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    instances: 0,
                    maxInstances: 0,
                    cpu: 0,
                    cpuBudget: 0,
                    memoryMb: 0,
                    memoryBudgetMb: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.instances = reader.uint32();
                            break;
                        }
                        case 2: {
                            obj.maxInstances = reader.uint32();
                            break;
                        }
                        case 3: {
                            obj.cpu = reader.double();
                            break;
                        }
                        case 4: {
                            obj.cpuBudget = reader.double();
                            break;
                        }
                        case 5: {
                            obj.memoryMb = reader.uint32();
                            break;
                        }
                        case 6: {
                            obj.memoryBudgetMb = reader.uint32();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.instances`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.maxInstances`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.cpu`,
                                value: reader.double()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.cpuBudget`,
                                value: reader.double()
                            };
                            break;
                        }
                        case 5: {
                            yield {
                                field: `${prefix}.memoryMb`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 6: {
                            yield {
                                field: `${prefix}.memoryBudgetMb`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, Capacity.codec());
    }
    Capacity.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, Capacity.codec(), opts);
    }
    Capacity.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, Capacity.codec(), opts);
    }
    Capacity.stream = stream;
})(Capacity || (Capacity = {}));
export var StatusResponse;
(function (StatusResponse) {
    let _codec;
    StatusResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.capacity != null) {
                    w.uint32(10);
                    Capacity.codec().encode(obj.capacity, w);
                }
                if (obj.failure != null) {
                    w.uint32(18);
                    Failure.codec().encode(obj.failure, w);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {};
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.capacity = Capacity.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.capacity
                            });
                            break;
                        }
                        case 2: {
                            obj.failure = Failure.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.failure
                            });
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield* Capacity.codec().stream(reader, reader.uint32(), `${prefix}.capacity`, {
                                limits: opts.limits?.capacity
                            });
                            break;
                        }
                        case 2: {
                            yield* Failure.codec().stream(reader, reader.uint32(), `${prefix}.failure`, {
                                limits: opts.limits?.failure
                            });
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, StatusResponse.codec());
    }
    StatusResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, StatusResponse.codec(), opts);
    }
    StatusResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, StatusResponse.codec(), opts);
    }
    StatusResponse.stream = stream;
})(StatusResponse || (StatusResponse = {}));
export var Failure;
(function (Failure) {
    let Code;
    (function (Code) {
        Code["INTERNAL"] = "INTERNAL";
        Code["NOT_FOUND"] = "NOT_FOUND";
        Code["CAPACITY"] = "CAPACITY";
        Code["IMAGE"] = "IMAGE";
        Code["TIMEOUT"] = "TIMEOUT";
        Code["UNAUTHORIZED"] = "UNAUTHORIZED";
        Code["RATE_LIMITED"] = "RATE_LIMITED";
        Code["BAD_REQUEST"] = "BAD_REQUEST";
        Code["CONFLICT"] = "CONFLICT";
        Code["UNAVAILABLE"] = "UNAVAILABLE";
    })(Code = Failure.Code || (Failure.Code = {}));
    let __CodeValues;
    (function (__CodeValues) {
        __CodeValues[__CodeValues["INTERNAL"] = 0] = "INTERNAL";
        __CodeValues[__CodeValues["NOT_FOUND"] = 1] = "NOT_FOUND";
        __CodeValues[__CodeValues["CAPACITY"] = 2] = "CAPACITY";
        __CodeValues[__CodeValues["IMAGE"] = 3] = "IMAGE";
        __CodeValues[__CodeValues["TIMEOUT"] = 4] = "TIMEOUT";
        __CodeValues[__CodeValues["UNAUTHORIZED"] = 5] = "UNAUTHORIZED";
        __CodeValues[__CodeValues["RATE_LIMITED"] = 6] = "RATE_LIMITED";
        __CodeValues[__CodeValues["BAD_REQUEST"] = 7] = "BAD_REQUEST";
        __CodeValues[__CodeValues["CONFLICT"] = 8] = "CONFLICT";
        __CodeValues[__CodeValues["UNAVAILABLE"] = 9] = "UNAVAILABLE";
    })(__CodeValues || (__CodeValues = {}));
    (function (Code) {
        Code.codec = () => {
            return enumeration(__CodeValues);
        };
    })(Code = Failure.Code || (Failure.Code = {}));
    let _codec;
    Failure.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.code != null && __CodeValues[obj.code] !== 0) {
                    w.uint32(8);
                    Failure.Code.codec().encode(obj.code, w);
                }
                if ((obj.message != null && obj.message !== '')) {
                    w.uint32(18);
                    w.string(obj.message);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    code: Code.INTERNAL,
                    message: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.code = Failure.Code.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            obj.message = reader.string();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.code`,
                                value: Failure.Code.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.message`,
                                value: reader.string()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, Failure.codec());
    }
    Failure.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, Failure.codec(), opts);
    }
    Failure.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, Failure.codec(), opts);
    }
    Failure.stream = stream;
})(Failure || (Failure = {}));
