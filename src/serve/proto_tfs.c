/* proto_tfs.c - TF Serving REST predict, Vertex AI and SageMaker JSON. */
#include "serve/proto_int.h"

st_status sv_decode_tfs(sv_ctx *c, sv_request *out)
{
    (void)out;
    return sv_fail(c, 400, ST_EUNSUPPORTED, "not yet implemented");
}

st_status sv_decode_csv(sv_ctx *c, sv_request *out)
{
    (void)out;
    return sv_fail(c, 415, ST_EUNSUPPORTED, "text/csv not yet implemented");
}

st_status sv_encode_tfs(sv_proto p, const sv_model_sig *sig, const sv_request *req,
                        const eng_tensor *outputs, size_t n_outputs, st_buf *body, st_error *err)
{
    (void)p, (void)sig, (void)req, (void)outputs, (void)n_outputs, (void)body;
    return st_fail(err, ST_EUNSUPPORTED, "not yet implemented");
}

st_status sv_encode_csv(const sv_model_sig *sig, const sv_request *req, const eng_tensor *outputs,
                        size_t n_outputs, st_buf *body, st_error *err)
{
    (void)sig, (void)req, (void)outputs, (void)n_outputs, (void)body;
    return st_fail(err, ST_EUNSUPPORTED, "not yet implemented");
}
