// A heatmap as one data texture: each texel is one cell, already coloured with the
// palette's scale on the CPU (lav-scene owns the colours). The shader adds what only
// the screen knows: thin lines between cells once they are big enough to see, and
// outlines for the selected cell (yellow) and the cell under the pointer (white).

#import bevy_pbr::forward_io::VertexOutput

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var cells: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var cells_sampler: sampler;
// x: rows, y: columns, z: selected row, w: selected column (-1: none).
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var<uniform> grid: vec4<f32>;
// x: hovered row, y: hovered column (-1: none; -2: the whole row, named in a 2-D
// view); z: 1 to dim the whole grid.
@group(#{MATERIAL_BIND_GROUP}) @binding(3) var<uniform> hover: vec4<f32>;

// 1 on a two-pixel border around the cells from lo to hi, 0 elsewhere.
fn outline(cell: vec2<f32>, lo: vec2<f32>, hi: vec2<f32>, px: vec2<f32>) -> f32 {
    let inside = all(cell >= lo - px * 1.5) && all(cell <= hi + px * 1.5);
    let edge = min(min(abs(cell.x - lo.x), abs(cell.x - hi.x)) / px.x,
                   min(abs(cell.y - lo.y), abs(cell.y - hi.y)) / px.y);
    return select(0.0, 1.0 - smoothstep(1.0, 2.5, edge), inside);
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    var color = textureSample(cells, cells_sampler, in.uv).rgb;
    // (column, row) coordinates in data cells, and one screen pixel in those units.
    let cell = in.uv * vec2(grid.y, grid.x);
    let px = max(fwidth(cell), vec2(1e-6));
    // Cell lines fade in from 6 to 12 pixels per cell.
    let f = min(fract(cell), 1.0 - fract(cell)) / px;
    let line = (1.0 - smoothstep(0.0, 1.0, min(f.x, f.y))) * smoothstep(6.0, 12.0, 1.0 / max(px.x, px.y));
    color = mix(color, vec3(0.08), 0.6 * line);
    if grid.z >= 0.0 {
        let sel = vec2(grid.w, grid.z);
        color = mix(color, vec3(0.94, 0.89, 0.26), outline(cell, sel, sel + vec2(1.0), px));
    }
    if hover.x >= 0.0 {
        let row = hover.y < -1.5;
        let lo = select(vec2(hover.y, hover.x), vec2(0.0, hover.x), row);
        let hi = select(lo + vec2(1.0), vec2(grid.y, hover.x + 1.0), row);
        color = mix(color, vec3(1.0), outline(cell, lo, hi, px));
    }
    color = mix(color, vec3(0.12), 0.7 * hover.z);
    return vec4(color, 1.0);
}
