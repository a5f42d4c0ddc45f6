/*
 * voicegw's request guard: a pjsip module that shows every incoming request to one
 * application callback before pjsip's transaction layer sees it, and answers statelessly
 * the requests the callback refuses, so that a refused request creates no transaction, no
 * dialog and no call.
 *
 * Compiled into pjsua2's Python extension by scripts/build_pjsua2.sh (it must share pjsip's
 * static globals); voicegw/sip/pjguard.py finds the two exported functions with ctypes.
 *
 * The callback runs on the thread that polls pjsip (voicegw's event loop). It receives the
 * method, the source address and port, the transport ("UDP", "TCP", "TLS", with a "6" for
 * IPv6), whether the To header has a tag, and the whole message; it returns 0 to let the
 * request through, or a final status (300-699) after writing into `out` the reason phrase
 * and extra header lines, all separated by CRLF and ended by a NUL.
 *
 * ACK never reaches the callback: it is never answered, and pjsip drops an ACK that matches
 * no transaction or dialog without creating anything.
 *
 * The response goes back over the request's own transport to the address it came from, never
 * to an address the request names (Via maddr, sent-by port): an unauthenticated request must
 * not turn voicegw into a reflector.
 */
#include <pjsip.h>
#include <pjsua-lib/pjsua.h>

#define VOICEGW_EXPORT __attribute__((visibility("default")))
#define GUARD_OUT_LEN 2048
#define GUARD_MAX_HEADERS 16

typedef int (*voicegw_guard_fn)(const char *method, size_t method_len, const char *host,
                                int port, const char *transport, int in_dialog,
                                const char *raw, size_t raw_len, char *out, size_t out_len);

static voicegw_guard_fn guard_fn;

static pj_bool_t on_rx_request(pjsip_rx_data *rdata);

static pjsip_module guard_module = {
    NULL, NULL,                         /* prev, next */
    { "mod-voicegw-guard", 17 },        /* name */
    -1,                                 /* id: set by pjsip when registered */
    PJSIP_MOD_PRIORITY_TSX_LAYER - 1,   /* ahead of the transaction layer */
    NULL, NULL, NULL, NULL,             /* load, start, stop, unload */
    &on_rx_request,
    NULL, NULL, NULL, NULL,             /* on_rx_response, on_tx_request, on_tx_response, on_tsx_state */
};

/* Trims spaces and tabs at both ends of `s`. */
static pj_str_t trimmed(const char *start, const char *end)
{
    pj_str_t s;

    while (start < end && (*start == ' ' || *start == '\t'))
        ++start;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        --end;
    s.ptr = (char *)start;
    s.slen = end - start;
    return s;
}

/* Adds the "Name: value" lines of `lines` (CRLF separated, NUL ended) to `msg`. */
static void add_headers(pj_pool_t *pool, pjsip_msg *msg, const char *lines)
{
    unsigned count = 0;

    while (*lines && count < GUARD_MAX_HEADERS) {
        const char *end = strstr(lines, "\r\n");
        const char *colon;

        if (end == NULL)
            end = lines + strlen(lines);
        colon = memchr(lines, ':', end - lines);
        if (colon != NULL && colon > lines) {
            pj_str_t name = trimmed(lines, colon);
            pj_str_t value = trimmed(colon + 1, end);
            pjsip_generic_string_hdr *hdr;

            hdr = pjsip_generic_string_hdr_create(pool, &name, &value);
            pjsip_msg_add_hdr(msg, (pjsip_hdr *)hdr);
            ++count;
        }
        lines = *end ? end + 2 : end;
    }
}

/* Sends `status` back to exactly where `rdata` came from, with no transaction. */
static void respond(pjsip_rx_data *rdata, int status, char *out)
{
    pjsip_endpoint *endpt = pjsua_get_pjsip_endpt();
    pjsip_transport *tp = rdata->tp_info.transport;
    pjsip_response_addr res_addr;
    pjsip_tx_data *tdata;
    char *eol = strstr(out, "\r\n");
    pj_str_t reason;
    pj_status_t rc;

    reason = pj_str(out);
    if (eol != NULL) {
        *eol = '\0';
        reason.slen = eol - out;
    }
    rc = pjsip_endpt_create_response(endpt, rdata, status, reason.slen ? &reason : NULL, &tdata);
    if (rc != PJ_SUCCESS)
        return;
    if (eol != NULL)
        add_headers(tdata->pool, tdata->msg, eol + 2);

    pj_bzero(&res_addr, sizeof(res_addr));
    res_addr.transport = tp;
    pj_memcpy(&res_addr.addr, &rdata->pkt_info.src_addr, rdata->pkt_info.src_addr_len);
    res_addr.addr_len = rdata->pkt_info.src_addr_len;
    res_addr.dst_host.type = (pjsip_transport_type_e)tp->key.type;
    res_addr.dst_host.flag = tp->flag;
    res_addr.dst_host.addr.host = pj_str(rdata->pkt_info.src_name);
    res_addr.dst_host.addr.port = rdata->pkt_info.src_port;
    if (pjsip_endpt_send_response(endpt, &res_addr, tdata, NULL, NULL) != PJ_SUCCESS)
        pjsip_tx_data_dec_ref(tdata);
}

static pj_bool_t on_rx_request(pjsip_rx_data *rdata)
{
    const pjsip_method *method = &rdata->msg_info.msg->line.req.method;
    char out[GUARD_OUT_LEN];
    int status;

    if (guard_fn == NULL || method->id == PJSIP_ACK_METHOD)
        return PJ_FALSE;
    out[0] = '\0';
    status = guard_fn(method->name.ptr, (size_t)method->name.slen, rdata->pkt_info.src_name,
                      rdata->pkt_info.src_port, rdata->tp_info.transport->type_name,
                      rdata->msg_info.to->tag.slen > 0, rdata->msg_info.msg_buf,
                      (size_t)rdata->msg_info.len, out, sizeof(out));
    if (status == 0)
        return PJ_FALSE;
    out[sizeof(out) - 1] = '\0';
    respond(rdata, status >= 300 && status <= 699 ? status : PJSIP_SC_INTERNAL_SERVER_ERROR, out);
    return PJ_TRUE;
}

/*
 * Starts showing requests to `fn` (after pjsua's libInit, before its transports take
 * traffic). Returns 0 or pjsip's error code.
 */
VOICEGW_EXPORT int voicegw_guard_install(voicegw_guard_fn fn)
{
    pjsip_endpoint *endpt = pjsua_get_pjsip_endpt();

    if (endpt == NULL || fn == NULL)
        return PJ_EINVAL;
    guard_fn = fn;
    /* pjsip sets the id back to -1 when the endpoint is destroyed with the module in it. */
    if (guard_module.id == -1)
        return pjsip_endpt_register_module(endpt, &guard_module);
    return PJ_SUCCESS;
}

/* Stops the guard: every request passes again. Safe to call when it was never installed. */
VOICEGW_EXPORT int voicegw_guard_uninstall(void)
{
    pjsip_endpoint *endpt = pjsua_get_pjsip_endpt();

    guard_fn = NULL;
    if (endpt == NULL || guard_module.id == -1)
        return PJ_SUCCESS;
    return pjsip_endpt_unregister_module(endpt, &guard_module);
}
